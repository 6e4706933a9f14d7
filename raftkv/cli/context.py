"""What every command shares: global flags, the connection, errors.

Global flags (--endpoints, -w, TLS, timeouts) are accepted before the
command, as in ``raftkv -w json get k``, and after it, as in etcdctl's
``raftkv get k -w json``; given after, they win.

Errors a user can cause end as one line on stderr that says what went wrong
and what to do, with exit code 1 (2 for a usage mistake); never a traceback
(``--debug`` shows one for unexpected errors).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import grpc

from raftkv import errors
from raftkv.cli import output

ENDPOINTS_ENV = "RAFTKV_ENDPOINTS"
DEFAULT_ENDPOINTS = "127.0.0.1:2379"
_META = "raftkv.globals"
GLOBALS_EPILOG = ("Global flags (--endpoints, -w/--write-out, --dial-timeout, --command-timeout, "
                  "--cacert/--cert/--key, --hex, --debug) go before or after the command; "
                  "see `raftkv --help`.")

# ---- durations --------------------------------------------------------------------

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's durations ("2s", "500ms", "1m30s") or plain seconds ("2.5")."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pos, value = 0, 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            value += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"{text!r} is not a duration (try 2s, 500ms or 1m30s)") from None
    if value <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return value


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


# ---- settings --------------------------------------------------------------------

@dataclass
class Settings:
    endpoints: list[str]
    dial_timeout: float = 2.0
    command_timeout: float = 5.0
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    write_out: str = output.SIMPLE
    hex: bool = False
    debug: bool = False
    user: str | None = None
    password: str | None = None
    opened_client: Any = field(default=None, repr=False)

    def credentials_of_user(self) -> tuple[str | None, str | None]:
        """etcdctl's --user name[:password] and --password; a password not given is asked for."""
        if not self.user:
            return None, None
        name, sep, password = self.user.partition(":")
        if not name:
            raise click.UsageError("--user: empty user name is not allowed")
        if sep:
            return name, password
        if self.password is not None:
            return name, self.password
        return name, click.prompt("Password", hide_input=True, err=True)

    @property
    def tls(self) -> bool:
        return bool(self.cacert or self.cert or self.key) or any(
            e.startswith("https://") for e in self.endpoints)

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls:
            return None
        if bool(self.cert) != bool(self.key):
            raise click.UsageError("--cert and --key go together")

        def read(path: str | None, flag: str) -> bytes | None:
            if not path:
                return None
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError as e:
                raise CLIError(f"{flag} {path}: {e.strerror}") from None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.cacert, "--cacert"),
            private_key=read(self.key, "--key"),
            certificate_chain=read(self.cert, "--cert"),
        )

    def where(self) -> str:
        return ", ".join(self.endpoints)


def _split_endpoints(value: str) -> list[str]:
    return [e.strip() for e in value.split(",") if e.strip()]


def _store(name: str, leaf: bool) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        source = ctx.get_parameter_source(param.name)
        if leaf and source is not click.core.ParameterSource.COMMANDLINE:
            return value
        ctx.meta.setdefault(_META, {})[name] = value
        return value

    return callback


def _global_options(leaf: bool, write_out_short: bool = True) -> list[Callable]:
    hidden = leaf
    write_out_flags = ("-w", "--write-out") if write_out_short else ("--write-out",)
    return [
        click.option("--endpoints", "global_endpoints", envvar=None if leaf else ENDPOINTS_ENV,
                     show_envvar=not leaf,
                     default=None if leaf else DEFAULT_ENDPOINTS, show_default=not leaf,
                     metavar="HOST:PORT,...", hidden=hidden, expose_value=False,
                     callback=_store("endpoints", leaf),
                     help="Members to talk to, comma-separated."),
        click.option(*write_out_flags, "global_write_out", type=click.Choice(output.FORMATS, case_sensitive=False),
                     default=None if leaf else output.SIMPLE, show_default=not leaf, hidden=hidden,
                     expose_value=False, callback=_store("write_out", leaf),
                     help="Output format."),
        click.option("--dial-timeout", "global_dial_timeout", type=Duration(), default=None if leaf else "2s",
                     show_default=not leaf, hidden=hidden, expose_value=False,
                     callback=_store("dial_timeout", leaf),
                     help="How long to wait for a first member to answer."),
        click.option("--command-timeout", "global_command_timeout", type=Duration(),
                     default=None if leaf else "5s",
                     show_default=not leaf, hidden=hidden, expose_value=False,
                     callback=_store("command_timeout", leaf),
                     help="Timeout of each request."),
        click.option("--cacert", "global_cacert", default=None, metavar="FILE", hidden=hidden, expose_value=False,
                     callback=_store("cacert", leaf),
                     help="Verify servers with this CA bundle (turns TLS on)."),
        click.option("--cert", "global_cert", default=None, metavar="FILE", hidden=hidden, expose_value=False,
                     callback=_store("cert", leaf), help="Client TLS certificate."),
        click.option("--key", "global_key", default=None, metavar="FILE", hidden=hidden, expose_value=False,
                     callback=_store("key", leaf), help="Client TLS key."),
        click.option("--user", "global_user", default=None, hidden=hidden, expose_value=False,
                     callback=_store("user", leaf),
                     help="name[:password] to authenticate as (the password is asked for if not given)."),
        click.option("--password", "global_password", default=None, hidden=hidden, expose_value=False,
                     callback=_store("password", leaf), help="Password of --user."),
        click.option("--hex", "global_hex", is_flag=True, default=None if leaf else False, hidden=hidden,
                     expose_value=False, callback=_store("hex", leaf),
                     help="Print keys and values as hex (\\xNN)."),
        click.option("--debug", "global_debug", is_flag=True, default=None if leaf else False, hidden=hidden,
                     expose_value=False, callback=_store("debug", leaf),
                     help="Show tracebacks of unexpected errors."),
    ]


def root_options(f: Callable) -> Callable:
    for option in reversed(_global_options(leaf=False)):
        f = option(f)
    return f


def leaf_options(f: Callable, write_out_short: bool = True) -> Callable:
    for option in reversed(_global_options(leaf=True, write_out_short=write_out_short)):
        f = option(f)
    return f


def settings(ctx: click.Context | None = None) -> Settings:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    existing = root.meta.get("raftkv.settings")
    if existing is not None:
        return existing
    values = dict(ctx.meta.get(_META, {}))
    endpoints = values.get("endpoints") or os.environ.get(ENDPOINTS_ENV) or DEFAULT_ENDPOINTS
    s = Settings(
        endpoints=_split_endpoints(endpoints),
        dial_timeout=values.get("dial_timeout") or 2.0,
        command_timeout=values.get("command_timeout") or 5.0,
        cacert=values.get("cacert"),
        cert=values.get("cert"),
        key=values.get("key"),
        write_out=(values.get("write_out") or output.SIMPLE).lower(),
        hex=bool(values.get("hex")),
        debug=bool(values.get("debug")),
        user=values.get("user"),
        password=values.get("password"),
    )
    if not s.endpoints:
        raise click.UsageError("--endpoints is empty; give HOST:PORT[,HOST:PORT...]")
    root.meta["raftkv.settings"] = s
    return s


def write_out(supported: tuple[str, ...] = output.FORMATS) -> str:
    """The chosen output format; a usage error if this command cannot print it."""
    fmt = settings().write_out
    if fmt not in supported:
        raise click.UsageError(f"{fmt} not supported as output format here "
                               f"(supported: {', '.join(supported)})")
    return fmt


# ---- the connection ---------------------------------------------------------------

class Unreachable(errors.Unavailable):
    """No endpoint answered within the dial timeout."""


def client(ctx: click.Context | None = None, *, check: bool = True):
    """The Client for this invocation (closed when the command ends), after
    making sure a member answers."""
    from raftkv.client.remote import Client

    ctx = ctx or click.get_current_context()
    s = settings(ctx)
    if s.opened_client is None:
        user, password = s.credentials_of_user()
        s.opened_client = Client(s.endpoints, timeout=s.command_timeout, credentials=s.credentials(),
                                 user=user, password=password)
        ctx.find_root().call_on_close(s.opened_client.close)
        if check:
            wait_reachable(s.opened_client, s.dial_timeout)
    return s.opened_client


def wait_reachable(c, timeout: float) -> None:
    """Wait until one endpoint's channel is ready; Unreachable if none gets
    there in ``timeout`` (all of them refusing fails at once)."""
    from raftkv.cli import rpc

    deadline = time.monotonic() + timeout
    n = len(c.endpoints)
    while True:
        states = [rpc.connectivity(c, index) for index in range(n)]
        if grpc.ChannelConnectivity.READY in states:
            return
        failed = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)
        if all(state in failed for state in states) or time.monotonic() > deadline:
            raise Unreachable()
        time.sleep(0.002)


# ---- errors -------------------------------------------------------------------------

class CLIError(click.ClickException):
    """One line on stderr, exit code 1. ``prefix`` replaces "Error: "."""

    exit_code = 1

    def __init__(self, message: str, prefix: str = "Error: ") -> None:
        super().__init__(message)
        self.prefix = prefix

    def show(self, file: Any = None) -> None:
        click.echo(click.style(self.prefix, fg="red", bold=True) + self.format_message(),
                   err=True, file=file)


def explain(e: BaseException, s: Settings | None) -> CLIError:
    """A user-facing one-line error for an exception a command raised."""
    from raftkv.objects.errors import ObjectError

    if isinstance(e, grpc.RpcError):  # a stream's error, not typed by the client yet
        from raftkv.cli import rpc

        return explain(rpc.typed(e), s)
    where = s.where() if s is not None else DEFAULT_ENDPOINTS
    tls_hint = " (TLS in use: check --cacert/--cert/--key and the server's certificate)" \
        if s is not None and s.tls else ""
    if isinstance(e, ObjectError):
        return CLIError(str(e), prefix=f"Error from server ({e.reason}): ")
    if isinstance(e, Unreachable) or type(e) is errors.Unavailable or isinstance(e, errors.StoreClosed):
        return CLIError(f"no member reachable at {where} — is `raftkv serve` running?{tls_hint}")
    if isinstance(e, (errors.NoLeader, errors.LeaderChanged)):
        return CLIError(f"{e} — the cluster is electing a leader or has lost its quorum; retry, "
                        "and check `raftkv endpoint status`")
    if isinstance(e, (errors.RequestTimedOut, errors.Unhealthy)):
        return CLIError(f"{e} — the cluster may have lost its quorum; check `raftkv endpoint health`")
    if isinstance(e, errors.NotSupportedForLearner):
        return CLIError(f"{e} — point --endpoints at a voting member, or read with --consistency s")
    if isinstance(e, errors.RaftKVError) and str(e).lower().startswith("deadline exceeded"):
        timeout = f"{s.command_timeout:g}s" if s is not None else "the timeout"
        return CLIError(f"no answer from {where} within {timeout} — raise --command-timeout, "
                        "or check `raftkv endpoint health`")
    hints = {
        errors.Compacted: "ask for a revision after the last compaction",
        errors.FutureRevision: "ask for a revision at or below the current one (see `raftkv endpoint status`)",
        errors.LeaseNotFound: "check the lease ID (hex) with `raftkv lease list`",
        errors.MemberNotFound: "check the member ID (hex) with `raftkv member list`",
        errors.PeerURLExists: "each member needs a peer URL of its own",
        errors.RequestTooLarge: "the limit is the server's --max-request-bytes",
        errors.NoSpace: "the store reached --quota-backend-bytes: delete what is not needed, then "
                        "`raftkv compact <revision>`, `raftkv defrag --cluster`, `raftkv alarm disarm`",
        errors.TooManyOps: "split the txn into smaller ones",
        errors.EmptyKey: "give a non-empty key",
        errors.LeaseTTLTooLarge: "ask for a smaller TTL",
        errors.MemberNotLearner: "only a learner (member add --learner) can be promoted",
        errors.LearnerNotReady: "wait until the learner has caught up, then retry",
    }
    for cls, hint in hints.items():
        if isinstance(e, cls):
            return CLIError(f"{e} — {hint}")
    if isinstance(e, errors.RaftKVError):
        message = str(e)
        if "ssl" in message.lower() or "handshake" in message.lower():
            return CLIError(f"TLS handshake with {where} failed: {message}{tls_hint}")
        if type(e) is errors.RaftKVError and not message.startswith(("etcdserver:", "raftkv:")):
            return CLIError(f"{where}: {message} — is this a raftkv or etcd client URL?")
        return CLIError(message)
    if isinstance(e, OSError):
        what = f"{e.filename}: " if e.filename else ""
        return CLIError(f"{what}{e.strerror or e}")
    return CLIError(f"unexpected {type(e).__name__}: {e} — rerun with --debug for details, "
                    "and please report it")


def guarded(invoke: Callable) -> Callable:
    """Wrap a Command/Group ``invoke`` so raftkv's errors become CLIErrors."""

    @functools.wraps(invoke)
    def wrapper(self: click.Command, ctx: click.Context) -> Any:
        try:
            return invoke(self, ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt, EOFError):
            raise
        except BrokenPipeError:
            _quiet_broken_pipe()
            raise click.exceptions.Exit(1) from None
        except Exception as e:
            s = ctx.find_root().meta.get("raftkv.settings")
            if (s is not None and s.debug) or ctx.meta.get(_META, {}).get("debug"):
                raise
            raise explain(e, s) from None

    return wrapper


def _quiet_broken_pipe() -> None:
    # the reader went away (`raftkv get ... | head`): stop without a traceback
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class RaftkvCommand(click.Command):
    invoke = guarded(click.Command.invoke)


class RaftkvGroup(click.Group):
    """A group whose commands take the global flags too and whose errors are one line.

    ``write_out_short=False`` leaves -w to the commands (kubectl's --watch)."""

    command_class = RaftkvCommand
    invoke = guarded(click.Group.invoke)

    def __init__(self, *args: Any, write_out_short: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.write_out_short = write_out_short

    def command(self, *args: Any, global_flags: bool = True, **kwargs: Any) -> Callable:
        """As click's, adding the global flags (hidden) unless ``global_flags`` is False."""
        def wrap(f: Callable) -> click.Command:
            cmd = command(*args, global_flags=global_flags, write_out_short=self.write_out_short,
                          **kwargs)(f)
            self.add_command(cmd)
            return cmd

        return wrap


RaftkvGroup.group_class = RaftkvGroup


def command(name: str | None = None, *, global_flags: bool = True, write_out_short: bool = True,
            **kwargs: Any) -> Callable:
    """A command taking the global flags after its own (hidden in its help)."""
    def wrap(f: Callable) -> click.Command:
        cmd = click.command(name, cls=kwargs.pop("cls", RaftkvCommand), **kwargs)(
            leaf_options(f, write_out_short) if global_flags else f)
        if cmd.epilog is None and global_flags:
            cmd.epilog = GLOBALS_EPILOG
        return cmd

    return wrap


def group(name: str | None = None, **kwargs: Any) -> Callable:
    return click.group(name, cls=RaftkvGroup, **kwargs)
