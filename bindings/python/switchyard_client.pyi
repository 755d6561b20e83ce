"""Type stubs for switchyard_client, the Switchyard client SDK for Python (a binding of the Rust
SDK: region failover, retries under a retry budget, WebSocket sessions that survive drains)."""

from types import TracebackType
from typing import Any, Iterator, Mapping, Optional, Sequence, Tuple, Type, Union

Headers = Union[Mapping[str, str], Sequence[Tuple[str, str]]]
Body = Union[bytes, bytearray, str]

class SwitchyardError(Exception):
    """An error from the SDK."""

    kind: str
    """The SDK's name for it: "connect", "timeout", "status", "transport", "budget_exhausted",
    "no_region", "deadline", "invalid", "session_closed", "queue_full", "tls",
    "body_too_large", "config", "other"."""
    retryable: bool
    """Whether the same call could succeed if made again later."""
    status: Optional[int]
    """The HTTP status, for StatusError."""
    region: Optional[str]
    """The region of the last attempt, if any."""
    def __init__(
        self,
        message: str,
        kind: str = ...,
        retryable: bool = ...,
        status: Optional[int] = ...,
        region: Optional[str] = ...,
    ) -> None: ...

class ConnectError(SwitchyardError, ConnectionError): ...
class RequestTimeout(SwitchyardError, TimeoutError): ...
class StatusError(SwitchyardError): ...
class TransportError(SwitchyardError, ConnectionError): ...
class BudgetExhausted(SwitchyardError): ...
class NoRegion(SwitchyardError): ...
class DeadlineExceeded(SwitchyardError, TimeoutError): ...
class InvalidRequest(SwitchyardError, ValueError): ...
class SessionClosed(SwitchyardError): ...
class QueueFull(SwitchyardError): ...
class TlsError(SwitchyardError): ...
class BodyTooLarge(SwitchyardError): ...
class ConfigError(SwitchyardError, ValueError): ...
class Undelivered(SwitchyardError): ...

class Response:
    """An answer."""

    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> list[Tuple[str, str]]:
        """(name, value) pairs, names lower case, in the order received."""
    @property
    def body(self) -> bytes: ...
    @property
    def region(self) -> str:
        """The region that answered."""
    @property
    def backend(self) -> Optional[str]:
        """The backend that answered (X-Backend-Id), if it said."""
    def header(self, name: str) -> Optional[str]:
        """The first value of header `name` (any case), or None."""
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
    def json(self) -> Any:
        """The body parsed as JSON."""

class Event:
    """One event of a session."""

    @property
    def kind(self) -> str:
        """"connected", "message", "unconfirmed", "reconnecting", "resumed", "undelivered",
        "closed" ("other" for a kind newer than this module)."""
    @property
    def data(self) -> Union[str, bytes, None]:
        """"message": the message (str for text, bytes for binary)."""
    @property
    def messages(self) -> list[Union[str, bytes]]:
        """"unconfirmed", "undelivered": the messages."""
    @property
    def region(self) -> Optional[str]: ...
    @property
    def backend(self) -> Optional[str]: ...
    @property
    def code(self) -> Optional[int]:
        """"reconnecting", "closed": the close code (None: a dead path)."""
    @property
    def reason(self) -> Optional[str]: ...
    @property
    def attempt(self) -> Optional[int]: ...
    @property
    def delay(self) -> Optional[float]:
        """"reconnecting": seconds before it."""
    @property
    def recovered(self) -> Optional[bool]:
        """"resumed": nothing the app sent can be missing."""
    @property
    def resent(self) -> Optional[int]: ...
    @property
    def not_kept(self) -> Optional[int]: ...

class Session:
    """A WebSocket session; iterate it for its events (the GIL is released while waiting)."""

    def send(self, message: Union[str, bytes, bytearray]) -> None:
        """Queues a message: str as text, bytes as binary. Never waits on the network."""
    def next(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event within `timeout` seconds (None: as long as it takes); None once the
        session is over. Raises RequestTimeout when nothing came in time."""
    def close(self) -> None:
        """Closes the session; raises Undelivered for messages queued and not delivered."""
    def __iter__(self) -> Iterator[Event]: ...
    def __next__(self) -> Event: ...
    def __enter__(self) -> "Session": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Client:
    """A client: one per app, shared by its threads.

    `config` is the SDK's configuration as a dict, e.g.
    {"regions": [{"name": "eu", "endpoints": ["https://eu.example.net"]}], "deadline": "10s"}.
    """

    def __init__(self, config: Mapping[str, Any]) -> None: ...
    def request(
        self,
        method: str,
        path: str,
        headers: Optional[Headers] = None,
        body: Optional[Body] = None,
        deadline: Optional[float] = None,
    ) -> Response:
        """Sends a request and waits for its answer. `deadline`: seconds for the whole call,
        retries included. A 4xx is an answer; 5xx and 429 after retries raise StatusError."""
    def get(self, path: str, headers: Optional[Headers] = None, deadline: Optional[float] = None) -> Response: ...
    def post(
        self,
        path: str,
        body: Optional[Body] = None,
        headers: Optional[Headers] = None,
        deadline: Optional[float] = None,
    ) -> Response: ...
    def session(self, path: str) -> Session:
        """Opens a WebSocket session on `path`, waiting until it is connected."""
    def stats(self) -> dict[str, int]:
        """attempts, retries, failovers, reconnects, budget_left."""
    def __enter__(self) -> "Client": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
