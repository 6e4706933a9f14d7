"""``raftkv obj``: Kubernetes-style objects, in kubectl's habits.

apply, create, get, delete, describe, label and api-resources over
raftkv.objects.ObjectStore on the cluster at --endpoints.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import click
import yaml

from raftkv.cli import output
from raftkv.cli.context import CLIError, client, group
from raftkv.cli.watch import interruptible
from raftkv.objects.columns import COLUMNS, WIDE, age, field, labels_text

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
OUTPUTS = ("wide", "json", "yaml", "name")


def register(cli: click.Group) -> None:
    cli.add_command(obj)


# ---- the store --------------------------------------------------------------------

def store():
    """The ObjectStore for this invocation."""
    from raftkv.objects import ObjectStore

    ctx = click.get_current_context()
    root = ctx.find_root()
    existing = root.meta.get("raftkv.objects")
    if existing is None:
        key_file = root.meta.get("raftkv.encryption_key")
        kv = client()
        try:
            existing = ObjectStore(kv, encryption_key=key_file)
        except (OSError, ValueError) as e:
            if not key_file:
                raise
            raise CLIError(f"--encryption-key {key_file}: {e}") from None
        root.meta["raftkv.objects"] = existing
    return existing


def _complete_kind(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    from raftkv.objects import BUILTIN_KINDS

    names = set()
    for k in BUILTIN_KINDS:
        names.update([k.plural, k.singular, *k.short_names])
    prefix, _, last = incomplete.rpartition(",")
    return sorted(f"{prefix},{n}" if prefix else n for n in names if n.startswith(last))


@group("obj", write_out_short=False)
@click.option("--encryption-key", envvar="RAFTKV_ENCRYPTION_KEY_FILE", default=None, metavar="FILE",
              show_envvar=True, help="Key file for Secrets encrypted at rest.")
@click.pass_context
def obj(ctx: click.Context, encryption_key: str | None) -> None:
    """Kubernetes-style objects: apply, create, get, delete, describe, label.

    \b
    Example:
        raftkv obj apply -f app.yaml
        raftkv obj get deploy,svc -l app=web
        raftkv obj describe deploy web
    """
    ctx.find_root().meta["raftkv.encryption_key"] = encryption_key


_namespace = click.option("-n", "--namespace", default=None, help="Namespace [default: default].")
_all_namespaces = click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")
_selector = click.option("-l", "--selector", default=None, help="Label selector, e.g. app=web,tier!=db.")
_files = click.option("-f", "--filename", "filenames", multiple=True, metavar="FILE|DIR|-",
                      help="Manifest(s): a file, a directory of .yaml/.yml/.json files, or - for stdin.")
_recursive = click.option("-R", "--recursive", is_flag=True, help="Walk directories given with -f.")


# ---- manifests ----------------------------------------------------------------------

def manifest_files(filenames: tuple[str, ...], recursive: bool) -> Iterator[tuple[str, str]]:
    """(source name, text) of every manifest named by -f."""
    if not filenames:
        raise click.UsageError("must give -f FILE|DIR|- (a manifest, a directory of them, or - for stdin)")
    for name in filenames:
        if name == "-":
            yield "STDIN", sys.stdin.read()
        elif os.path.isdir(name):
            found = []
            for root, dirs, files in os.walk(name):
                found.extend(os.path.join(root, f) for f in files
                             if f.endswith((".yaml", ".yml", ".json")))
                if not recursive:
                    break
            if not found:
                raise CLIError(f"no .yaml, .yml or .json files in {name}")
            for path in sorted(found):
                yield path, _read(path)
        else:
            yield name, _read(name)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise CLIError(f"the path \"{path}\" does not exist" if e.errno == 2 else f"{path}: {e.strerror}") \
            from None
    except UnicodeDecodeError:
        raise CLIError(f"{path} is not UTF-8 text — give a YAML or JSON manifest") from None


def load_objects(filenames: tuple[str, ...], recursive: bool) -> list[tuple[str, dict[str, Any]]]:
    from raftkv.objects import load_manifest
    from raftkv.objects.errors import BadRequest

    out = []
    for source, text in manifest_files(filenames, recursive):
        try:
            out.extend((source, doc) for doc in load_manifest(text))
        except BadRequest as e:
            raise CLIError(f"error parsing {source}: {e}") from None
    return out


def kind_ref(kind) -> str:
    """deployment.apps, service: how kubectl names a kind in its messages."""
    singular = kind.kind.lower()
    return f"{singular}.{kind.group}" if kind.group else singular


def resource_name(kind, name: str) -> str:
    """deployment.apps/web, service/web: kubectl's -o name form."""
    return f"{kind_ref(kind)}/{name}"


def _object_error(e: Exception, verb: str, source: str) -> str:
    from raftkv.objects.errors import ObjectError, UnknownKind

    if isinstance(e, UnknownKind):
        return f"error: resource mapping not found for {source}: {e}"
    if isinstance(e, ObjectError):
        return f"Error from server ({e.reason}): error when {verb} \"{source}\": {e}"
    raise e


def _run_each(items: list[tuple[str, dict[str, Any]]], label: str, action) -> None:
    """Run ``action(doc)`` on each object (it returns the line to print), in
    kubectl's way: errors are printed as they come, the others still run,
    and the exit code is 1 if any failed. A progress bar on a terminal when
    there are many."""
    from raftkv.objects.errors import ObjectError

    failures = 0
    lines: list[str] = []
    many = len(items) >= 20 and output.stderr_is_terminal()
    with output.progress(len(items) if many else 0, label) as bar:
        for source, doc in items:
            try:
                line = action(doc)
                if many:
                    lines.append(line)
                else:
                    click.echo(line)
            except ObjectError as e:
                failures += 1
                click.echo(_object_error(e, label, source), err=True)
            bar.update(1)
    for line in lines:
        click.echo(line)
    if failures:
        raise click.exceptions.Exit(1)


# ---- apply / create --------------------------------------------------------------------

@obj.command("apply")
@_files
@_recursive
@_namespace
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
def apply(filenames: tuple[str, ...], recursive: bool, namespace: str | None, dry_run: bool) -> None:
    """Create or update objects to match manifests (multi-document YAML or JSON).

    Applying the same manifest again reports "unchanged"; fields a previous
    apply set and this one does not are removed.

    \b
    Examples:
        raftkv obj apply -f app.yaml
        raftkv obj apply -f manifests/ -R
        cat app.yaml | raftkv obj apply -f -
    """
    items = load_objects(filenames, recursive)
    s = store()
    suffix = " (dry run)" if dry_run else ""

    def act(doc: dict[str, Any]) -> str:
        from raftkv.objects.apply import apply_object

        return f"{apply_object(s, doc, namespace, dry_run=dry_run)}{suffix}"

    _run_each(items, "applying", act)


@obj.command("create")
@_files
@_recursive
@_namespace
@click.option("--dry-run", is_flag=True, help="Check, create nothing.")
def create(filenames: tuple[str, ...], recursive: bool, namespace: str | None, dry_run: bool) -> None:
    """Create the objects of manifests (an error for any that exists).

    \b
    Example:
        raftkv obj create -f configmap.yaml
    """
    items = load_objects(filenames, recursive)
    s = store()
    suffix = " (dry run)" if dry_run else ""

    def act(doc: dict[str, Any]) -> str:
        created = s.create(doc, namespace, dry_run=dry_run)
        return f"{resource_name(s.kind_of(doc), created['metadata']['name'])} created{suffix}"

    _run_each(items, "creating", act)


# ---- columns ------------------------------------------------------------------------------

class Printer:
    """Rows of one kind, as kubectl's default printer lays them out."""

    def __init__(self, kind, *, wide: bool, all_namespaces: bool, show_labels: bool, show_kind: bool) -> None:
        self.kind = kind
        columns = [("NAME", self._name)]
        if all_namespaces and kind.namespaced:
            columns.insert(0, ("NAMESPACE", lambda o: field(o, "metadata", "namespace", default="")))
        columns += COLUMNS.get(kind.kind, []) if kind.builtin else []
        if kind.kind != "CustomResourceDefinition" or not kind.builtin:
            columns.append(("AGE", age))
        if wide and kind.builtin:
            columns += WIDE.get(kind.kind, [])
        if show_labels:
            columns.append(("LABELS", labels_text))
        self.columns = columns
        self.show_kind = show_kind

    def _name(self, o: dict[str, Any]) -> str:
        name = field(o, "metadata", "name", default="")
        return resource_name(self.kind, name) if self.show_kind else name

    @property
    def header(self) -> list[str]:
        return [h for h, _ in self.columns]

    def row(self, o: dict[str, Any]) -> list[str]:
        return [str(fn(o)) for _, fn in self.columns]

    def table(self, objects: list[dict[str, Any]]) -> str:
        return output.plain_table(self.header, [self.row(o) for o in objects], header_style=False)

    def widths(self, objects: list[dict[str, Any]]) -> list[int]:
        rows = [self.header] + [self.row(o) for o in objects]
        return [max(len(r[i]) for r in rows) for i in range(len(self.columns))]


def _ordered(o: dict[str, Any]) -> dict[str, Any]:
    first = {k: o[k] for k in ("apiVersion", "kind", "metadata") if k in o}
    return {**first, **{k: v for k, v in o.items() if k not in first}}


class _Dumper(yaml.SafeDumper):
    """kubectl's YAML: multi-line strings as | blocks."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    if "\n" in text:
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", text)


_Dumper.add_representer(str, _str)


def dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=4, ensure_ascii=False)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True).rstrip("\n")


def as_list(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "items": [_ordered(o) for o in objects], "kind": "List",
            "metadata": {"resourceVersion": ""}}


def _kinds(spec: str) -> list:
    s = store()
    kinds = []
    for ref in [r.strip() for r in spec.split(",") if r.strip()]:
        kinds.append(s.kind(ref))
    if not kinds:
        raise click.UsageError("give a KIND, e.g. `raftkv obj get pods`")
    return kinds


def _scope(kind, namespace: str | None, all_namespaces: bool) -> str | None:
    if not kind.namespaced:
        return None
    if all_namespaces:
        return None
    return namespace or "default"


def _unknown_kind(e: Exception) -> CLIError:
    return CLIError(str(e), prefix="error: ")


# ---- get ------------------------------------------------------------------------------------

@obj.command("get")
@click.argument("kind", metavar="KIND[,KIND...]", shell_complete=_complete_kind)
@click.argument("names", nargs=-1)
@_namespace
@_all_namespaces
@_selector
@click.option("--field-selector", default=None, help="Field selector, e.g. metadata.name=web.")
@click.option("-o", "--output", "out", type=click.Choice(OUTPUTS), default=None,
              help="wide, json, yaml or name (default: a table).")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column.")
@click.option("-w", "--watch", is_flag=True,
              help="After listing, print each change until Ctrl-C.")
def get(kind: str, names: tuple[str, ...], namespace: str | None, all_namespaces: bool, selector: str | None,
        field_selector: str | None, out: str | None, show_labels: bool, watch: bool) -> None:
    """List objects of KIND, or get the ones NAMES.

    KIND is a kind, plural, singular or short name (deploy, svc, po), or
    several separated by commas.

    \b
    Examples:
        raftkv obj get deployments
        raftkv obj get deploy,svc -l app=web
        raftkv obj get pods -A -o wide
        raftkv obj get deploy web -o yaml
        raftkv obj get pods --watch
    """
    from raftkv.objects.errors import NotFound, UnknownKind

    if names and (selector or field_selector):
        raise click.UsageError("give NAMES or a selector, not both")
    if all_namespaces and namespace:
        raise click.UsageError("-n and -A cannot be combined")
    try:
        kinds = _kinds(kind)
    except UnknownKind as e:
        raise _unknown_kind(e) from None
    if watch:
        if len(kinds) != 1:
            raise click.UsageError("--watch takes one KIND")
        _watch(kinds[0], names, namespace, all_namespaces, selector, field_selector, out, show_labels)
        return
    s = store()
    show_kind = len(kinds) > 1
    found: list[tuple[Any, list[dict[str, Any]]]] = []
    missing = []
    for k in kinds:
        scope = _scope(k, namespace, all_namespaces)
        if names:
            objects = []
            for name in names:
                try:
                    objects.append(s.get(k, name, scope or (namespace if k.namespaced else None)))
                except NotFound as e:
                    missing.append(e)
            found.append((k, objects))
        else:
            items = s.list(k, scope, label_selector=selector, field_selector=field_selector).items
            found.append((k, items))
    everything = [o for _, objects in found for o in objects]
    if out in ("json", "yaml"):
        if len(names) == 1 and len(kinds) == 1 and len(everything) == 1:
            click.echo(dump(_ordered(everything[0]), out))
        elif everything or not missing:
            click.echo(dump(as_list(everything), out))
    elif out == "name":
        for k, objects in found:
            for o in objects:
                click.echo(resource_name(k, o["metadata"]["name"]))
    else:
        printed = False
        for k, objects in found:
            if not objects:
                continue
            if printed:
                click.echo("")
            printer = Printer(k, wide=out == "wide", all_namespaces=all_namespaces, show_labels=show_labels,
                              show_kind=show_kind)
            click.echo(printer.table(objects))
            printed = True
        if not printed and not missing:
            where = "" if all_namespaces or not any(k.namespaced for k in kinds) else \
                f" in {namespace or 'default'} namespace"
            click.echo(f"No resources found{where}.", err=True)
    for e in missing:
        click.echo(f"Error from server (NotFound): {e}", err=True)
    if missing:
        raise click.exceptions.Exit(1)


def _watch(kind, names: tuple[str, ...], namespace: str | None, all_namespaces: bool, selector: str | None,
           field_selector: str | None, out: str | None, show_labels: bool) -> None:
    from raftkv.cli import rpc
    from raftkv.objects.errors import Expired

    s = store()
    scope = _scope(kind, namespace, all_namespaces)
    if names:
        selector_parts = [f"metadata.name={names[0]}"] if len(names) == 1 else []
        if len(names) > 1:
            raise click.UsageError("--watch takes at most one NAME")
        field_selector = ",".join(filter(None, [field_selector, *selector_parts]))
    printer = Printer(kind, wide=out == "wide", all_namespaces=all_namespaces, show_labels=show_labels,
                      show_kind=False)
    listed = s.list(kind, scope, label_selector=selector, field_selector=field_selector)
    widths = printer.widths(listed.items)

    def show(o: dict[str, Any]) -> None:
        if out in ("json", "yaml"):
            click.echo(dump(_ordered(o), out))
            if out == "yaml":
                click.echo("---")
        elif out == "name":
            click.echo(resource_name(kind, o["metadata"]["name"]))
        else:
            click.echo(output.table_row(widths, printer.row(o)))

    if out not in ("json", "yaml", "name"):
        click.echo(output.table_row(widths, printer.header))
    for o in listed.items:
        show(o)
    resource_version = listed.resource_version
    with interruptible():
        while True:
            try:
                w = s.watch(kind, scope, label_selector=selector, field_selector=field_selector,
                            resource_version=resource_version)
            except Expired:
                resource_version = None  # too old: list again (as ADDED) and go on
                continue
            except Exception as e:
                if not _retryable(e):
                    raise
                rpc.rotate(client())
                time.sleep(0.5)
                continue
            try:
                for event in w:  # ends when the member it watches on goes away
                    resource_version = event.resource_version or resource_version
                    show(event.object)
            except Expired:
                resource_version = None
            finally:
                w.stop()
            rpc.rotate(client())  # go on with another member


def _retryable(e: Exception) -> bool:
    import grpc

    from raftkv.errors import Unavailable

    if isinstance(e, Unavailable):
        return True
    return isinstance(e, grpc.RpcError) and e.code() in (grpc.StatusCode.UNAVAILABLE,
                                                         grpc.StatusCode.DEADLINE_EXCEEDED)


# ---- delete ---------------------------------------------------------------------------------

@obj.command("delete")
@click.argument("kind", required=False, metavar="[KIND]", shell_complete=_complete_kind)
@click.argument("names", nargs=-1)
@_files
@_recursive
@_namespace
@_all_namespaces
@_selector
@click.option("--all", "all_", is_flag=True, help="Every object of KIND in the namespace.")
@click.option("--ignore-not-found", is_flag=True, help="No error for objects already gone.")
@click.option("--cascade", type=click.Choice(["background", "foreground", "orphan"]), default="background",
              show_default=True, help="What happens to the objects these own.")
def delete(kind: str | None, names: tuple[str, ...], filenames: tuple[str, ...], recursive: bool,
           namespace: str | None, all_namespaces: bool, selector: str | None, all_: bool,
           ignore_not_found: bool, cascade: str) -> None:
    """Delete objects: by KIND and NAMES, by manifest (-f), or by selector (-l).

    \b
    Examples:
        raftkv obj delete deploy web
        raftkv obj delete -f app.yaml
        raftkv obj delete pods -l app=web
        raftkv obj delete configmaps --all -n staging
    """
    from raftkv.objects.errors import NotFound, ObjectError, UnknownKind

    s = store()
    policy = cascade.capitalize()
    targets: list[tuple[Any, str, str | None, str]] = []  # kind, name, namespace, source
    if filenames:
        if kind or names or selector or all_:
            raise click.UsageError("give -f, or KIND with NAMES, -l or --all; not both")
        for source, doc in load_objects(filenames, recursive):
            try:
                k = s.kind_of(doc)
            except UnknownKind as e:
                raise _unknown_kind(e) from None
            meta = doc.get("metadata") or {}
            ns = (meta.get("namespace") or namespace or "default") if k.namespaced else None
            targets.append((k, meta.get("name", ""), ns, source))
    else:
        if not kind:
            raise click.UsageError("give KIND and NAMES, KIND with -l/--all, or -f FILE")
        try:
            kinds = _kinds(kind)
        except UnknownKind as e:
            raise _unknown_kind(e) from None
        if bool(names) + bool(selector) + all_ != 1:
            raise click.UsageError("give NAMES, -l SELECTOR or --all (one of them)")
        for k in kinds:
            if names:
                ns = (namespace or "default") if k.namespaced else None
                targets.extend((k, name, ns, "") for name in names)
            else:
                scope = _scope(k, namespace, all_namespaces)
                for o in s.list(k, scope, label_selector=selector).items:
                    targets.append((k, o["metadata"]["name"], o["metadata"].get("namespace"), ""))
        if not targets and not names:
            click.echo("No resources found", err=True)
            return
    failures = 0
    for k, name, ns, source in targets:
        try:
            s.delete(k, name, ns, propagation_policy=policy)
            click.echo(f'{kind_ref(k)} "{name}" deleted')
        except NotFound as e:
            if not ignore_not_found:
                failures += 1
                click.echo(f"Error from server (NotFound): {e}", err=True)
        except ObjectError as e:
            failures += 1
            click.echo(f"Error from server ({e.reason}): {e}", err=True)
    if failures:
        raise click.exceptions.Exit(1)


# ---- describe --------------------------------------------------------------------------------

_ACRONYMS = {"uid": "UID", "ip": "IP", "cidr": "CIDR", "url": "URL", "api": "API", "id": "ID"}
_VERBATIM_CHILDREN = ("labels", "annotations", "matchLabels", "data", "stringData", "binaryData",
                      "nodeSelector")


def _title(key: str) -> str:
    """matchLabels -> Match Labels, as kubectl's generic describer writes keys."""
    words, current = [], ""
    for i, ch in enumerate(key):
        if ch.isupper() and current and (current[-1].islower() or
                                         (i + 1 < len(key) and key[i + 1].islower())):
            words.append(current)
            current = ""
        current += ch
    words.append(current)
    return " ".join(_ACRONYMS.get(w.lower(), w[:1].upper() + w[1:]) for w in words if w)


def _describe_value(value: Any, indent: int, lines: list[str], title_keys: bool = True) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        labels = {k: (_title(k) if title_keys else k) + ":" for k in value}
        width = max((len(label) for label in labels.values()), default=0)
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{labels[k]}")
                _describe_value(v, indent + 1, lines, title_keys=k not in _VERBATIM_CHILDREN)
            else:
                lines.append(f"{pad}{labels[k].ljust(width)}  {_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                _describe_value(item, indent, lines, title_keys)
            else:
                lines.append(f"{pad}{_scalar(item)}")


def _scalar(v: Any) -> str:
    if v is None or v == {} or v == []:
        return "<none>"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _map_lines(label: str, mapping: dict[str, str] | None, width: int) -> list[str]:
    items = sorted((mapping or {}).items())
    if not items:
        return [f"{label.ljust(width)}<none>"]
    lines = [f"{label.ljust(width)}{items[0][0]}={items[0][1]}"]
    lines += [f"{'':{width}}{k}={v}" for k, v in items[1:]]
    return lines


def describe_text(o: dict[str, Any]) -> str:
    m = o.get("metadata") or {}
    width = 14
    lines = [f"{'Name:':{width}}{m.get('name', '')}"]
    if m.get("namespace"):
        lines.append(f"{'Namespace:':{width}}{m['namespace']}")
    lines += _map_lines("Labels:", m.get("labels"), width)
    annotations = {k: v for k, v in (m.get("annotations") or {}).items() if k != LAST_APPLIED}
    lines += _map_lines("Annotations:", annotations, width)
    lines.append(f"{'API Version:':{width}}{o.get('apiVersion', '')}")
    lines.append(f"{'Kind:':{width}}{o.get('kind', '')}")
    meta_rest = {k: v for k, v in m.items() if k in ("creationTimestamp", "resourceVersion", "uid", "generation",
                                                     "deletionTimestamp", "finalizers", "ownerReferences")}
    lines.append("Metadata:")
    _describe_value(meta_rest, 1, lines)
    for key, value in o.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if isinstance(value, (dict, list)) and value:
            lines.append(f"{_title(key)}:")
            _describe_value(value, 1, lines, title_keys=key not in ("data", "stringData", "binaryData"))
        else:
            lines.append(f"{_title(key) + ':':{width}}{_scalar(value)}")
    lines.append(f"{'Events:':{width}}<none>")
    return "\n".join(lines)


@obj.command("describe")
@click.argument("kind", shell_complete=_complete_kind)
@click.argument("names", nargs=-1)
@_namespace
@_selector
def describe(kind: str, names: tuple[str, ...], namespace: str | None, selector: str | None) -> None:
    """Show objects in detail, in a readable form.

    \b
    Examples:
        raftkv obj describe deploy web
        raftkv obj describe svc -l app=web
    """
    from raftkv.objects.errors import UnknownKind

    try:
        (k,) = _kinds(kind) if "," not in kind else (None,)
    except UnknownKind as e:
        raise _unknown_kind(e) from None
    if k is None:
        raise click.UsageError("describe takes one KIND")
    s = store()
    scope = _scope(k, namespace, False)
    if names:
        objects = [s.get(k, name, scope) for name in names]
    else:
        objects = s.list(k, scope, label_selector=selector).items
        if not objects:
            click.echo(f"No resources found in {namespace or 'default'} namespace." if k.namespaced
                       else "No resources found.", err=True)
            return
    click.echo("\n\n\n".join(describe_text(o) for o in objects))


# ---- label -------------------------------------------------------------------------------------

@obj.command("label")
@click.argument("kind", shell_complete=_complete_kind)
@click.argument("args", nargs=-1, required=True, metavar="NAME... KEY=VALUE... KEY-...")
@_namespace
@_selector
@click.option("--all", "all_", is_flag=True, help="Every object of KIND in the namespace.")
@click.option("--overwrite", is_flag=True, help="Allow changing a label that has a value.")
def label(kind: str, args: tuple[str, ...], namespace: str | None, selector: str | None, all_: bool,
          overwrite: bool) -> None:
    """Add (KEY=VALUE), change (with --overwrite) or remove (KEY-) labels.

    \b
    Examples:
        raftkv obj label deploy web tier=frontend
        raftkv obj label deploy web tier=backend --overwrite
        raftkv obj label deploy web tier-
        raftkv obj label pods -l app=web canary=true
    """
    from raftkv.objects.errors import UnknownKind

    names = [a for a in args if "=" not in a and not a.endswith("-")]
    changes = [a for a in args if "=" in a or a.endswith("-")]
    if not changes:
        raise click.UsageError("give at least one KEY=VALUE or KEY- to change")
    add: dict[str, str] = {}
    remove: list[str] = []
    for change in changes:
        if "=" in change:
            key, _, value = change.partition("=")
            if not key:
                raise click.UsageError(f"invalid label spec: {change}")
            add[key] = value
        else:
            remove.append(change[:-1])
    if set(add) & set(remove):
        raise click.UsageError("a label cannot be both added and removed")
    try:
        (k,) = _kinds(kind) if "," not in kind else (None,)
    except UnknownKind as e:
        raise _unknown_kind(e) from None
    if k is None:
        raise click.UsageError("label takes one KIND")
    if bool(names) + bool(selector) + all_ != 1:
        raise click.UsageError("give NAMES, -l SELECTOR or --all (one of them)")
    s = store()
    scope = _scope(k, namespace, False)
    if names:
        targets = [s.get(k, n, scope) for n in names]
    else:
        targets = s.list(k, scope, label_selector=selector).items
    for o in targets:
        current = o["metadata"].get("labels") or {}
        if not overwrite:
            for key, value in add.items():
                if key in current and current[key] != value:
                    raise CLIError(f"'{key}' already has a value ({current[key]}), and --overwrite is false",
                                   prefix="error: ")
        patch_labels: dict[str, Any] = {key: value for key, value in add.items() if current.get(key) != value}
        patch_labels.update({key: None for key in remove if key in current})
        name = o["metadata"]["name"]
        if not patch_labels:
            click.echo(f"{resource_name(k, name)} not labeled")
            continue
        s.patch(k, name, {"metadata": {"labels": patch_labels}}, o["metadata"].get("namespace") or None)
        click.echo(f"{resource_name(k, name)} labeled")


# ---- api-resources -------------------------------------------------------------------------------

@obj.command("api-resources")
@click.option("--namespaced", type=click.BOOL, default=None,
              help="Only namespaced (true) or cluster (false) kinds.")
@click.option("-o", "--output", "out", type=click.Choice(["name", "wide"]), default=None,
              help="name: only the resource names.")
def api_resources(namespaced: bool | None, out: str | None) -> None:
    """The kinds the store knows, with their short names (custom ones included).

    \b
    Example:
        raftkv obj api-resources
    """
    s = store()
    kinds = sorted(s.kinds, key=lambda k: (k.group, k.plural))
    if namespaced is not None:
        kinds = [k for k in kinds if k.namespaced == namespaced]
    if out == "name":
        for k in kinds:
            click.echo(k.resource)
        return
    rows = [[k.plural, ",".join(k.short_names), k.api_version, str(k.namespaced).lower(), k.kind]
            for k in kinds]
    click.echo(output.plain_table(["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"], rows,
                                  header_style=False))

