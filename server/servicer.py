"""The DecisionService servicer: convert, call the loop, convert back (on the event loop).

``principal`` is the caller (``server.guard`` authorizes it; None on an open server): the loop
answers NOT_FOUND for an experiment, or an event of an experiment, it may not see."""

from __future__ import annotations

import grpc

from arbiter.server import convert
from arbiter.server.auth import Principal
from arbiter.server.domain import ChooseInput
from arbiter.server.errors import ArbiterError, InvalidArgument
from arbiter.server.loop import DecisionLoop
from arbiter.v1 import decision_pb2 as pb
from arbiter.v1 import decision_pb2_grpc


class DecisionServicer(decision_pb2_grpc.DecisionServiceServicer):
    def __init__(self, loop: DecisionLoop, *, max_actions: int = convert.DEFAULT_MAX_ACTIONS,
                 limits: convert.Limits = convert.DEFAULT_LIMITS,
                 max_batch: int = convert.DEFAULT_MAX_BATCH) -> None:
        self._loop = loop
        self._max_batch = max_batch
        self._max_actions = max_actions
        self._limits = limits

    async def Choose(  # type: ignore[override]  # bytes are served as they are (decoding)
            self, request: pb.ChooseRequest, context: grpc.aio.ServicerContext,
            principal: Principal | None = None) -> pb.ChooseResponse | bytes:
        """The ChooseResponse, or its serialized bytes when it has explanations
        (:func:`~server.convert.choose_answer`)."""
        choose = convert.choose_input(request, max_actions=self._max_actions, limits=self._limits)
        allowed = principal.experiments if principal is not None else None
        return convert.choose_answer(await self._loop.choose(choose, allowed))

    async def ChooseBatch(self, request: pb.ChooseBatchRequest, context: grpc.aio.ServicerContext,
                          principal: Principal | None = None) -> pb.ChooseBatchResponse:
        convert.batch_size(request, self._max_batch)
        allowed = principal.experiments if principal is not None else None
        shared = convert.SharedActions()
        return convert.batch_response(await self._loop.choose_batch(
            [self._each(item, shared) for item in request.requests], allowed))

    def _each(self, request: pb.ChooseRequest,
              shared: convert.SharedActions) -> ChooseInput | ArbiterError:
        """One request of a batch, validated; its error if it is invalid."""
        try:
            return convert.choose_input(request, max_actions=self._max_actions,
                                        limits=self._limits, shared=shared)
        except InvalidArgument as error:
            return error

    async def Reward(self, request: pb.RewardRequest, context: grpc.aio.ServicerContext,
                     principal: Principal | None = None) -> pb.RewardResponse:
        event_id, value = convert.reward_input(request)
        allowed = principal.experiments if principal is not None else None
        return convert.reward_response(
            await self._loop.reward(event_id, value, request.reward_id, allowed))

    async def Activate(self, request: pb.ActivateRequest, context: grpc.aio.ServicerContext,
                       principal: Principal | None = None) -> pb.ActivateResponse:
        allowed = principal.experiments if principal is not None else None
        await self._loop.activate(convert.activate_input(request), allowed)
        return pb.ActivateResponse()
