"""gRPC interceptors shared by every process.

Server side: restore the request ID from metadata and turn domain exceptions into a status — one place,
streaming RPCs included, so servicers never call `context.abort` themselves.
Client side: forward the current request ID as metadata.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc import aio

from services.shared.context import REQUEST_ID_METADATA, request_id_var, sane_request_id
from services.shared.errors import FactoryError

log = logging.getLogger(__name__)

# The stubs make these generic; the runtime classes are not subscriptable.
if TYPE_CHECKING:
    _ServerBase = aio.ServerInterceptor[Any, Any]
    _UnaryUnaryBase = aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStreamBase = aio.UnaryStreamClientInterceptor[Any, Any]
    _StreamUnaryBase = aio.StreamUnaryClientInterceptor[Any, Any]
    _StreamStreamBase = aio.StreamStreamClientInterceptor[Any, Any]
else:
    _ServerBase = aio.ServerInterceptor
    _UnaryUnaryBase = aio.UnaryUnaryClientInterceptor
    _UnaryStreamBase = aio.UnaryStreamClientInterceptor
    _StreamUnaryBase = aio.StreamUnaryClientInterceptor
    _StreamStreamBase = aio.StreamStreamClientInterceptor

REASON_METADATA = "if-reason"


async def _abort(context: aio.ServicerContext[Any, Any], exc: BaseException, method: str) -> None:
    if isinstance(exc, aio.AioRpcError):
        # A downstream service failed: pass its status, message and reason on unchanged, so that
        # "schematic not found" stays a 404 however many hops it crossed.
        trailing: Any = exc.trailing_metadata()
        reason = trailing.get(REASON_METADATA) if trailing else None
        log.info("downstream rpc failed", extra={"method": method, "code": exc.code().name, "error": exc.details()})
        # No reason: the failure is gRPC's own (the downstream unreachable or gone mid-call), and stays
        # marked as such, so the gateway does not show its transport text to clients.
        if reason is not None:
            context.set_trailing_metadata(((REASON_METADATA, str(reason)),))
        await context.abort(exc.code(), exc.details() or "")
    if isinstance(exc, FactoryError):
        level = logging.ERROR if exc.code == grpc.StatusCode.INTERNAL else logging.INFO
        log.log(level, "rpc failed", extra={"method": method, "code": exc.code.name, "error": exc.message})
        context.set_trailing_metadata(((REASON_METADATA, exc.reason),))
        await context.abort(exc.code, exc.message)
    log.exception("rpc crashed", extra={"method": method}, exc_info=exc)
    context.set_trailing_metadata(((REASON_METADATA, "INTERNAL"),))
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def _set_request_id(context: aio.ServicerContext[Any, Any]) -> None:
    incoming = dict(context.invocation_metadata() or ()).get(REQUEST_ID_METADATA)
    request_id_var.set(sane_request_id(str(incoming) if incoming else None))


def _wrap_unary(behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
    async def wrapper(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        _set_request_id(context)
        try:
            return await behavior(request, context)
        except aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, method)

    return wrapper


def _wrap_stream(behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
    async def wrapper(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        _set_request_id(context)
        try:
            async for item in behavior(request, context):
                yield item
        except aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, method)

    return wrapper


class ServerInterceptor(_ServerBase):
    """Request ID in, domain errors out as status codes with one-line messages."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_wrap_unary(handler.unary_unary, method), **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(_wrap_unary(handler.stream_unary, method), **kwargs)
        if handler.unary_stream:
            behavior: Any = handler.unary_stream  # an async generator function on aio servers
            return grpc.unary_stream_rpc_method_handler(_wrap_stream(behavior, method), **kwargs)
        if handler.stream_stream:
            behavior = handler.stream_stream
            return grpc.stream_stream_rpc_method_handler(_wrap_stream(behavior, method), **kwargs)
        return handler


def _with_request_id(details: aio.ClientCallDetails) -> aio.ClientCallDetails:
    request_id = request_id_var.get()
    if not request_id:
        return details
    metadata = aio.Metadata(*(details.metadata or ()))
    metadata[REQUEST_ID_METADATA] = request_id
    return aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials, details.wait_for_ready)


# grpc.aio files each interceptor under the first call type it implements, so one class per type.
class _UnaryUnaryRequestId(_UnaryUnaryBase):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_request_id(client_call_details), request)


class _UnaryStreamRequestId(_UnaryStreamBase):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(_with_request_id(client_call_details), request)


class _StreamUnaryRequestId(_StreamUnaryBase):
    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_request_id(client_call_details), request_iterator)


class _StreamStreamRequestId(_StreamStreamBase):
    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any, request_iterator: Any) -> Any:
        return await continuation(_with_request_id(client_call_details), request_iterator)


def request_id_interceptors() -> list[Any]:
    """Client interceptors that forward the caller's request ID on every kind of RPC."""
    return [_UnaryUnaryRequestId(), _UnaryStreamRequestId(), _StreamUnaryRequestId(), _StreamStreamRequestId()]
