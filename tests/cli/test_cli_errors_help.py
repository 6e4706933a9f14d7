"""Help on every command, shell completion, one-line errors, TLS flags."""

from __future__ import annotations

import datetime
import ipaddress
import time

import click
import pytest

from cli_helpers import invoke, run

from raftkv.cli.main import cli
from raftkv.cluster.local import LocalCluster, MemberProcess, free_ports


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, path + (name,))


ALL = list(_commands(cli))


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_help_with_an_example(path):
    result = invoke(None, *path, "--help").ok()
    assert "Example" in result.out, result.out


def test_every_verb_of_the_issue_exists():
    names = {" ".join(p) for p, _ in ALL}
    for verb in ("serve", "cluster up", "cluster status", "put", "get", "del", "watch", "txn",
                 "lease grant", "lease revoke", "lease keep-alive", "lease timetolive", "lease list",
                 "member list", "member add", "member remove", "endpoint status", "endpoint health",
                 "compact", "snapshot save", "snapshot restore", "snapshot status", "lock", "elect",
                 "obj apply", "obj create", "obj get", "obj delete", "obj describe", "obj label",
                 "obj api-resources", "completion", "shell"):
        assert verb in names


def test_serve_keeps_its_flags():
    help_text = invoke(None, "serve", "--help").ok().out
    for flag in ("--name", "--data-dir", "--listen-client-urls", "--initial-cluster", "--peer-secret-file",
                 "--listen-metrics-urls", "--client-cert-auth"):
        assert flag in help_text
    assert "--endpoints" not in help_text


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell):
    assert "_RAFTKV_COMPLETE" in invoke(None, "completion", shell).ok().out


def _complete(words: str, cword: int) -> str:
    from click.testing import CliRunner

    env = {"_RAFTKV_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    return CliRunner().invoke(cli, [], env=env, prog_name="raftkv").stdout


def test_completion_of_commands_and_kinds():
    assert "plain,deploy" in _complete("raftkv obj get dep", 3).splitlines()
    assert "plain,deployments" in _complete("raftkv obj get dep", 3).splitlines()
    assert "plain,lease" in _complete("raftkv le", 1).splitlines()


def test_unreachable_endpoint_is_one_line_and_quick():
    (port,) = free_ports(1)
    start = time.monotonic()
    result = run("get", "k", endpoints=f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10
    assert result.code == 1
    assert result.out == ""
    assert result.err == f"Error: no member reachable at 127.0.0.1:{port} — is `raftkv serve` running?\n"


def test_unreachable_for_every_kind_of_verb():
    (port,) = free_ports(1)
    for args in (["member", "list"], ["endpoint", "health"], ["lease", "list"], ["obj", "get", "pods"],
                 ["cluster", "status"], ["snapshot", "save", "/tmp/never.snap"], ["lock", "x"]):
        result = invoke(f"127.0.0.1:{port}", *args)
        assert result.code == 1, args
        assert result.err.startswith("Error: no member reachable at"), (args, result.err)


def test_a_dead_endpoint_is_skipped_when_another_answers(kv):
    (port,) = free_ports(1)
    result = invoke(f"127.0.0.1:{port},{kv.endpoint}", "put", kv.prefix + "failover", "ok").ok()
    assert result.out == "OK\n"


def test_bad_flag_values_are_usage_errors():
    for args in (["--dial-timeout", "soon", "get", "k"], ["-w", "xml", "get", "k"], ["get", "k", "--limit", "x"]):
        result = invoke("127.0.0.1:1", *args)
        assert result.code == 2 and "Traceback" not in result.err


# ---- TLS ------------------------------------------------------------------------------

def _pki(d):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("ca")).issuer_name(name("ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("server")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "server-key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))


class _TlsCluster(LocalCluster):
    def command(self, member: MemberProcess) -> list[str]:
        return [arg.replace(f"http://{member.endpoint}", f"https://{member.endpoint}")
                for arg in super().command(member)]

    def wait_ready(self, timeout: float = 30.0) -> None:  # the plain-text status probe cannot reach it
        time.sleep(0)


@pytest.mark.timeout(60)
def test_tls_flags(tmp_path):
    _pki(tmp_path)
    cluster = _TlsCluster(1, str(tmp_path / "c"), extra_args=[
        "--cert-file", str(tmp_path / "server.pem"), "--key-file", str(tmp_path / "server-key.pem")])
    try:
        cluster.start()
        endpoint = f"https://{cluster.members[0].endpoint}"
        deadline = time.monotonic() + 30
        while True:
            result = invoke(endpoint, "--cacert", str(tmp_path / "ca.pem"), "put", "secure", "yes")
            if result.code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert result.ok().out == "OK\n"
        assert invoke(endpoint, "get", "secure", "--print-value-only",
                      "--cacert", str(tmp_path / "ca.pem")).ok().out == "yes\n"
        untrusted = invoke(endpoint, "get", "secure")  # TLS with the system's CAs only
        assert untrusted.code == 1
        assert "TLS in use" in untrusted.err and len(untrusted.err.strip().splitlines()) == 1
        plain = invoke(cluster.members[0].endpoint, "get", "secure")
        assert plain.code == 1 and "Traceback" not in plain.err
        missing = invoke(endpoint, "--cacert", str(tmp_path / "nope.pem"), "get", "x")
        assert missing.code == 1 and "nope.pem" in missing.err
    finally:
        cluster.stop()
