"""Undecodable requests answered as etcd (grpc-go) answers them.

gRPC Python rejects a request its deserializer cannot parse with a fixed
"Exception deserializing request!". etcd's gRPC library says
"grpc: error unmarshalling request: <why>" for a single request and
"grpc: failed to unmarshal the received message <why>" for one in a
stream, both with the Internal code. This interceptor takes over the
parsing of every request so the caller gets etcd's wording (the reason
itself is the protobuf library's, which differs from Go's).

For a stream it also keeps the handler clean: instead of an exception
thrown out of the request iterator into the servicer (after which gRPC
Python never finishes the call, and the server cannot stop), the iterator
sets the status and ends, so the servicer winds the stream down as if the
client had closed it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator

import grpc


def too_large(size: int, limit: int) -> str:
    """grpc-go's words for a message over the server's receive limit."""
    return f"grpc: received message larger than max ({size} vs. {limit})"


def _unary_parse(decode: Callable[[bytes], object], data: bytes, context: grpc.ServicerContext, limit: int):
    if len(data) > limit:
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, too_large(len(data), limit))
    try:
        return decode(data)
    except Exception as e:  # protobuf's DecodeError, or worse
        context.abort(grpc.StatusCode.INTERNAL, f"grpc: error unmarshalling request: {e}")


_UNPARSED = object()


def _parse_streamed(decode: Callable[[bytes], object], data: bytes, context, limit: int) -> object:
    """One message of a request stream, or _UNPARSED with the stream's status set."""
    if len(data) > limit:
        context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
        context.set_details(too_large(len(data), limit))
        return _UNPARSED
    try:
        return decode(data)
    except Exception as e:
        context.set_code(grpc.StatusCode.INTERNAL)
        context.set_details(f"grpc: failed to unmarshal the received message {e}")
        return _UNPARSED


def _stream_parse(decode: Callable[[bytes], object], raw: Iterator[bytes],
                  context: grpc.ServicerContext, limit: int) -> Iterator[object]:
    for data in raw:
        message = _parse_streamed(decode, data, context, limit)
        if message is _UNPARSED:
            return
        yield message


async def _async_stream_parse(decode: Callable[[bytes], object], raw: AsyncIterator[bytes],
                              context: grpc.aio.ServicerContext, limit: int) -> AsyncIterator[object]:
    async for data in raw:
        message = _parse_streamed(decode, data, context, limit)
        if message is _UNPARSED:
            return
        yield message


def handler_parts(handler: grpc.RpcMethodHandler):
    """(its behaviour, the function that makes a handler of its kind, whether it is a coroutine)."""
    streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
    if streaming_in and streaming_out:
        inner, make = handler.stream_stream, grpc.stream_stream_rpc_method_handler
    elif streaming_in:
        inner, make = handler.stream_unary, grpc.stream_unary_rpc_method_handler
    elif streaming_out:
        inner, make = handler.unary_stream, grpc.unary_stream_rpc_method_handler
    else:
        inner, make = handler.unary_unary, grpc.unary_unary_rpc_method_handler
    is_async = inspect.iscoroutinefunction(inner) or inspect.isasyncgenfunction(inner)
    return inner, make, is_async


class EtcdDecodeErrors(grpc.aio.ServerInterceptor):
    """Parses every request itself: etcd's words for an undecodable one, and
    for one over ``limit`` bytes (gRPC's own receive limit is set higher, so
    that this check, not gRPC's, says it)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # built once per method

    async def intercept_service(self, continuation, handler_call_details):
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is None:
            wrapped = self._wrap(await continuation(handler_call_details))
            if wrapped is not None:
                self._wrapped[handler_call_details.method] = wrapped
        return wrapped

    def _wrap(self, handler):
        if handler is None or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer
        limit = self._limit
        streaming_in, streaming_out = handler.request_streaming, handler.response_streaming
        inner, make, is_async = handler_parts(handler)

        if not is_async:
            def parsed(data, context):
                if streaming_in:
                    return _stream_parse(decode, data, context, limit)
                return _unary_parse(decode, data, context, limit)

            if streaming_out:
                def behavior(data, context):
                    yield from inner(parsed(data, context), context)
            else:
                def behavior(data, context):
                    return inner(parsed(data, context), context)
        elif streaming_in:
            if streaming_out:
                async def behavior(data, context):
                    async for response in inner(_async_stream_parse(decode, data, context, limit), context):
                        yield response
            else:
                async def behavior(data, context):
                    return await inner(_async_stream_parse(decode, data, context, limit), context)
        else:
            async def parse_one(data, context):
                if len(data) > limit:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, too_large(len(data), limit))
                try:
                    return decode(data)
                except Exception as e:
                    await context.abort(grpc.StatusCode.INTERNAL, f"grpc: error unmarshalling request: {e}")

            if streaming_out:
                async def behavior(data, context):
                    request = await parse_one(data, context)
                    async for response in inner(request, context):
                        yield response
            else:
                async def behavior(data, context):
                    return await inner(await parse_one(data, context), context)

        # no deserializer: gRPC hands the raw bytes to ``behavior``
        return make(behavior, request_deserializer=None, response_serializer=handler.response_serializer)
