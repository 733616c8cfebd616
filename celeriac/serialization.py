"""How values become bytes and back: JSON by default, pickle only when accepted.

The JSON codec round-trips the types Celery users pass most (datetime, date, time,
UUID, Decimal, bytes, tuples become lists as in Celery) using kombu's tagged form
``{"__type__": ..., "__value__": ...}``. ``accept_content`` is checked *before* a
payload is decoded, so a message in a refused content type is never deserialized.
Exceptions travel as Celery's ``{"exc_type", "exc_message", "exc_module"}`` dict.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import decimal
import importlib
import json
import pickle
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from celeriac import exceptions as exc_mod
from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError, RemoteTaskError

JSON = "application/json"
PICKLE = "application/x-python-serialize"

_ALIASES = {"json": JSON, "pickle": PICKLE}


def content_type_of(name: str) -> str:
    """Map a serializer name (``json``) or content type to the content type."""
    try:
        return _ALIASES[name] if name in _ALIASES else _check_known(name)
    except KeyError:
        raise EncodeError(f"unknown serializer {name!r}: use one of {sorted(_ALIASES)}") from None


def _check_known(content_type: str) -> str:
    if content_type not in _ALIASES.values():
        raise KeyError(content_type)
    return content_type


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"__type__": "datetime", "__value__": value.isoformat()}
    if isinstance(value, dt.date):
        return {"__type__": "date", "__value__": value.isoformat()}
    if isinstance(value, dt.time):
        return {"__type__": "time", "__value__": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"__type__": "uuid", "__value__": str(value)}
    if isinstance(value, decimal.Decimal):
        return {"__type__": "decimal", "__value__": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"__type__": "bytes", "__value__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, set | frozenset):
        return list(value)
    if hasattr(value, "__json__"):
        return value.__json__()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_DECODERS: dict[str, Callable[[str], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": decimal.Decimal,
    "bytes": lambda v: base64.b64decode(v.encode()),
}


def _object_hook(obj: dict[str, Any]) -> Any:
    kind = obj.get("__type__")
    if kind is not None and len(obj) == 2 and "__value__" in obj:
        decoder = _DECODERS.get(kind)
        if decoder is not None:
            return decoder(obj["__value__"])
    return obj


_ENCODER = json.JSONEncoder(default=_default, ensure_ascii=False, separators=(",", ":"))
_DECODER = json.JSONDecoder(object_hook=_object_hook)


def dumps(value: Any, content_type: str = JSON) -> bytes:
    """Serialize ``value``; raise :class:`EncodeError` with the reason when it can't be."""
    try:
        if content_type == JSON:
            return _ENCODER.encode(value).encode("utf-8")
        if content_type == PICKLE:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (TypeError, ValueError, RecursionError, pickle.PicklingError, AttributeError) as exc:
        raise EncodeError(f"cannot serialize with {content_type}: {exc}") from exc
    raise EncodeError(f"unknown content type {content_type!r}")


def loads(data: bytes, content_type: str, accept: Iterable[str]) -> Any:
    """Deserialize ``data`` if ``content_type`` is accepted, else raise ContentDisallowed."""
    if content_type not in accept:
        raise ContentDisallowed(
            f"refusing to deserialize content of type {content_type!r}: "
            f"not in accept_content {sorted(accept)}"
        )
    try:
        if content_type == JSON:
            return _DECODER.decode(bytes(data).decode("utf-8"))
        if content_type == PICKLE:
            return pickle.loads(data)
    except (ValueError, RecursionError, pickle.UnpicklingError, EOFError) as exc:
        raise DecodeError(f"cannot decode {content_type} payload: {exc}") from exc
    except Exception as exc:
        raise DecodeError(f"cannot decode {content_type} payload: {exc!r}") from exc
    raise DecodeError(f"unknown content type {content_type!r}")


def accepted(names: Iterable[str]) -> frozenset[str]:
    """Normalise an ``accept_content`` list (names or content types) to content types
    (remembered: a worker asks once per job)."""
    key = tuple(names)
    found = _ACCEPTED.get(key)
    if found is None:
        found = _ACCEPTED[key] = frozenset(content_type_of(name) for name in key)
    return found


_ACCEPTED: dict[tuple[str, ...], frozenset[str]] = {}


# -- exceptions -----------------------------------------------------------------
def exception_to_dict(exc: BaseException) -> dict[str, Any]:
    """Celery's JSON form of an exception."""
    cls = type(exc)
    remote = getattr(cls, "_remote_type", None)
    return {
        "exc_type": remote[1] if remote else cls.__qualname__,
        "exc_message": list(_safe_args(exc)),
        "exc_module": remote[0] if remote else cls.__module__,
    }


def _safe_args(exc: BaseException) -> list[Any]:
    args = []
    for arg in exc.args:
        try:
            _ENCODER.encode(arg)
            args.append(arg)
        except (TypeError, ValueError):
            args.append(repr(arg))
    return args


def is_exception_dict(value: Any) -> bool:
    """True when ``value`` looks like a serialized exception."""
    return isinstance(value, dict) and "exc_type" in value and "exc_message" in value


@dataclass(frozen=True)
class _Remote:
    module: str
    name: str


_remote_classes: dict[tuple[str, str], type[RemoteTaskError]] = {}


def exception_from_dict(data: dict[str, Any]) -> BaseException:
    """Re-create an exception: the original type where importable, else a RemoteTaskError."""
    module, name = str(data.get("exc_module") or "builtins"), str(data["exc_type"])
    args = data.get("exc_message") or []
    if not isinstance(args, list | tuple):
        args = [args]
    cls = _import_exception(module, name)
    if cls is not None:
        try:
            return cls(*args)
        except Exception:
            try:
                instance = cls.__new__(cls)
                instance.args = tuple(args)
                return instance
            except Exception:
                pass
    return _remote_class(module, name)(*args)


def _import_exception(module: str, name: str) -> type[BaseException] | None:
    if module == "builtins":
        found = getattr(builtins, name, None)
    elif module == exc_mod.__name__ or module.startswith(("celery.", "billiard.")):
        found = getattr(exc_mod, name, None)
    else:
        try:
            found = importlib.import_module(module)
            for part in name.split("."):
                found = getattr(found, part)
        except Exception:
            return None
    if isinstance(found, type) and issubclass(found, BaseException):
        return found
    return None


def _remote_class(module: str, name: str) -> type[RemoteTaskError]:
    key = (module, name)
    if key not in _remote_classes:
        cls = type(name.rsplit(".", 1)[-1], (RemoteTaskError,), {"_remote_type": key})
        cls.__module__ = module
        _remote_classes[key] = cls
    return _remote_classes[key]


__all__ = [
    "JSON",
    "PICKLE",
    "accepted",
    "content_type_of",
    "dumps",
    "exception_from_dict",
    "exception_to_dict",
    "is_exception_dict",
    "loads",
]
