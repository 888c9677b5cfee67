"""The HTTP server in front of every route, Gradio's and the API's: who may call it, and how much they may send.

Gradio's own CORS middleware echoes any `Origin` back with credentials whenever the `Host` is not localhost, so
with --listen any web page a person on the network visits could drive the app. As A1111 does, it is taken out
after launch and replaced by Starlette's CORSMiddleware for the origins `--cors-allow-origins` names (none by
default), behind a guard (`RequestGuard`) that answers first:

- a `Host` this server does not serve is refused (400): DNS rebinding turns an attacker's name into 127.0.0.1;
- a request from another origin (an `Origin` that is neither this server's own nor an allowed one) is refused
  (403), preflights and websockets included, so other sites can neither read nor write;
- a body over the limit is refused (413) before anything parses it;
- a client whose logins keep failing is refused (429, `Retry-After`) for a while.
"""
import json
import socket
import time
from collections import deque
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import gradio as gr
from gradio.route_utils import CustomCORSMiddleware
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_BODY_BYTES = 64 * 2 ** 20
MAX_UPLOAD = "45mb"          # page uploads (Gradio's max_file_size); the API's pictures have the same cap
LOGIN_PATHS = ("/login", "/login/")


@dataclass(frozen=True)
class ServerPolicy:
    allowed_hosts: frozenset[str] = LOCAL_NAMES      # host names (no port) requests may name; "*" = any
    cors_origins: tuple[str, ...] = ()               # other sites allowed to call, e.g. "http://localhost:3000"
    max_body_bytes: int = MAX_BODY_BYTES
    max_login_failures: int = 5                      # within `lockout_seconds`, from one client address
    lockout_seconds: float = 60.0


def host_name(host: str) -> str:
    """'Example.lan:7860' -> 'example.lan', '[::1]:7860' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":")[0]
    return host.rstrip(".")


def lan_address() -> str:
    """This machine's address on the local network (no packet is sent), or its hostname."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.254.254.254", 1))
            return s.getsockname()[0]
        except OSError:
            return socket.gethostname()


def this_machine_names() -> set[str]:
    """What a person on the network may type to reach this machine: its names and every interface address."""
    import psutil
    hostname = socket.gethostname()
    names = {hostname, f"{hostname}.local", socket.getfqdn(), lan_address(), "0.0.0.0"}
    names |= {a.address.split("%")[0] for addresses in psutil.net_if_addrs().values() for a in addresses
              if a.family in (socket.AF_INET, socket.AF_INET6)}
    return {host_name(n) for n in names if n}


def served_hosts(listen: bool, extra: list[str] | tuple[str, ...] = ()) -> frozenset[str]:
    """Host names a request may carry: localhost's, with --listen this machine's too, and --allowed-hosts."""
    names = set(LOCAL_NAMES) | (this_machine_names() if listen else set())
    return frozenset(names | {"*" if h.strip() == "*" else host_name(h) for h in extra if h.strip()})


class LoginThrottle:
    """Failed logins per client address; past the limit within the window, that address waits out the window."""

    def __init__(self, limit: int, window: float, clock=time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self.failures: dict[str, deque] = {}
        self.locked_until: dict[str, float] = {}

    def wait(self, client: str) -> float:
        """Seconds this client must still wait before its next login attempt (0: may try now)."""
        return max(0.0, self.locked_until.get(client, 0.0) - self.clock())

    def failed(self, client: str) -> None:
        now = self.clock()
        times = self.failures.setdefault(client, deque())
        times.append(now)
        while times and times[0] < now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            self.locked_until[client] = now + self.window
            times.clear()
        if len(self.failures) > 10_000:          # bounded, whatever the number of addresses
            self.failures.pop(next(iter(self.failures)))

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)
        self.locked_until.pop(client, None)


class RequestGuard:
    """ASGI middleware, outermost: Host, Origin, body size and login throttling (see the module docstring)."""

    def __init__(self, app, policy: ServerPolicy):
        self.app, self.policy = app, policy
        self.logins = LoginThrottle(policy.max_login_failures, policy.lockout_seconds)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        refusal = self.refusal(scope, headers)
        if refusal is not None:
            return await refuse(scope, send, *refusal)
        if scope["type"] == "websocket":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        is_login = ((scope["method"] == "POST" and scope["path"] in LOGIN_PATHS) or "authorization" in headers)
        if is_login and (wait := self.logins.wait(client)) > 0:
            return await refuse(scope, send, 429, "TooManyLogins",
                                f"Too many failed logins from {client}: try again in {wait:.0f} s.",
                                [(b"retry-after", str(int(wait) + 1).encode())])
        return await self.forward(scope, receive, send, client if is_login else None)

    def refusal(self, scope, headers: dict) -> tuple | None:
        host = headers.get("host", "")
        allowed = self.policy.allowed_hosts
        if "*" not in allowed and host_name(host) not in allowed:
            return (400, "HostNotServed", f"This server does not answer to the host name {host_name(host)!r}. "
                                          "Open it by its own address, or start it with --allowed-hosts NAME.")
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin, host):
            return (403, "CrossOriginRefused", f"Requests from {origin} are refused: only this server's own page "
                                               "may call it. Allow a site with --cors-allow-origins.")
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.policy.max_body_bytes:
            return (413, "BodyTooLarge", self.too_large())
        return None

    def origin_allowed(self, origin: str, host: str) -> bool:
        if origin in self.policy.cors_origins or "*" in self.policy.cors_origins:
            return True
        return urlsplit(origin).netloc.lower() == host.lower() and bool(host)

    def too_large(self) -> str:
        return f"The request body is over {self.policy.max_body_bytes / 2 ** 20:g} MB (--max-body-size)."

    async def forward(self, scope, receive, send, login_client: str | None):
        """Pass the request on, counting body bytes as they arrive (chunked bodies have no Content-Length)."""
        received, over, started = 0, False, False

        async def counted_receive():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.policy.max_body_bytes:
                    over = True
                    return {"type": "http.disconnect"}       # the app stops reading; the guard answers
            return message

        async def watched_send(message):
            nonlocal started
            if over:
                if not started:
                    started = True
                    await refuse(scope, send, 413, "BodyTooLarge", self.too_large())
                return
            if message["type"] == "http.response.start":
                started = True
                if login_client is not None:
                    status = message["status"]
                    if status == 401 or (status == 400 and scope["path"] in LOGIN_PATHS):
                        self.logins.failed(login_client)
                    elif status < 400:
                        self.logins.succeeded(login_client)
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await refuse(scope, send, 413, "BodyTooLarge", self.too_large())


async def refuse(scope, send, status: int, error: str, detail: str, extra_headers=()):
    if scope["type"] == "websocket":          # closing before accepting answers the handshake with 403
        return await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra_headers]})
    await send({"type": "http.response.body", "body": body})


def guard(server, policy: ServerPolicy) -> None:
    """Put the guard (and CORS for the allowed origins only) in front of a launched Gradio server, in place of
    Gradio's CORS middleware. The new stack is built whole, then swapped in in one assignment."""
    kept = [m for m in server.user_middleware if m.cls is not CustomCORSMiddleware]
    front = [Middleware(RequestGuard, policy=policy)]
    if policy.cors_origins:
        front.append(Middleware(CORSMiddleware, allow_origins=list(policy.cors_origins), allow_credentials=True,
                                allow_methods=["*"], allow_headers=["*"]))
    server.user_middleware = front + kept
    server.middleware_stack = server.build_middleware_stack()


def serve(app: gr.Blocks, host: str, port: int, policy: ServerPolicy, share: bool = False,
          auth: list[tuple[str, str]] | None = None, css: str | None = None):
    """Launch the Blocks app without blocking and guard it; returns the FastAPI server (routes may be added)."""
    server, _, share_url = app.launch(server_name=host, server_port=port, share=share, auth=auth,
                                      prevent_thread_lock=True, quiet=True, css=css, max_file_size=MAX_UPLOAD)
    if share_url:               # the tunnel's own name is served too
        policy = replace(policy, allowed_hosts=policy.allowed_hosts | {host_name(urlsplit(share_url).netloc)})
    guard(server, policy)
    return server
