"""The grpc.health.v1 messages, built at run time from a descriptor.

Debian's python3-grpcio has no ``grpc_health`` module, so the two messages of
grpc/health/v1/health.proto are declared here (in a private descriptor pool, so an installed
``grpcio-health-checking`` never clashes) and called through a plain unary-unary method.
"""

from __future__ import annotations

from typing import Any, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"


def _build() -> Tuple[Any, Any]:
    f = descriptor_pb2.FileDescriptorProto(
        name="grpc/health/v1/health.proto", package="grpc.health.v1", syntax="proto3"
    )
    request = f.message_type.add(name="HealthCheckRequest")
    request.field.add(
        name="service",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    response = f.message_type.add(name="HealthCheckResponse")
    status = response.enum_type.add(name="ServingStatus")
    for number, name in enumerate(["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]):
        status.value.add(name=name, number=number)
    response.field.add(
        name="status",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
        type_name=".grpc.health.v1.HealthCheckResponse.ServingStatus",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    classes = []
    for name in ("grpc.health.v1.HealthCheckRequest", "grpc.health.v1.HealthCheckResponse"):
        descriptor = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
            classes.append(message_factory.GetMessageClass(descriptor))
        else:
            classes.append(message_factory.MessageFactory(pool).GetPrototype(descriptor))
    return classes[0], classes[1]


HealthCheckRequest, HealthCheckResponse = _build()


def status_name(response: Any) -> str:
    """The ServingStatus name ("SERVING", "NOT_SERVING", ...) of a HealthCheckResponse."""
    enum = HealthCheckResponse.DESCRIPTOR.enum_types_by_name["ServingStatus"]
    value = enum.values_by_number.get(response.status)
    return value.name if value is not None else str(response.status)
