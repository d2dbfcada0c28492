"""Readers and evaluators for the deployment files under deploy/ (used by test_deploy.py).

- `kustomize()`: a small kustomize for the features deploy/k8s uses (resources, configMapGenerator,
  JSON 6902 patches, namespace, images, replicas). It refuses anything else, so it cannot silently
  render something different from `kubectl kustomize`; where kubectl exists, a test compares the two.
- `ingress_allowed()`: Kubernetes NetworkPolicy ingress semantics (podSelector / namespaceSelector peers,
  numeric and named ports, endPort), to check who may reach whom.
- `parse_dockerfile()`: stages, their instructions (continuations joined), the effective USER.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

Doc = dict[str, Any]


def load_docs(path: Path) -> list[Doc]:
    """Every non-empty YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


# --- kustomize -----------------------------------------------------------------------------------------


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not do, or refers to a missing file."""


_KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "replicas",
    "configMapGenerator",
    "patches",
}
_GENERATOR_KEYS = {"name", "files", "literals", "behavior"}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass", "IngressClass"}
# Kinds whose pod template holds containers (for the images transformer).
_POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


@dataclass
class Rendered:
    docs: list[Doc]
    # ConfigMaps made by a generator: kustomize appends a content hash to their names (and references).
    generated: set[str] = field(default_factory=set)

    def find(self, kind: str, name: str) -> Doc:
        matches = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name]
        if len(matches) != 1:
            raise KeyError(f"{kind}/{name}: {len(matches)} matches")
        return matches[0]

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]


def kustomize(directory: Path) -> Rendered:
    """Render `directory/kustomization.yaml` the way `kubectl kustomize` does, minus name hashes."""
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    unknown = set(spec) - _KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeError(f"{path}: unsupported fields {sorted(unknown)}")
    out = Rendered(docs=[])
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            sub = kustomize(target)
            out.docs += sub.docs
            out.generated |= sub.generated
        elif target.is_file():
            _inside(directory, target, path)
            out.docs += load_docs(target)
        else:
            raise KustomizeError(f"{path}: resource {entry} does not exist")
    for generator in spec.get("configMapGenerator", []):
        _generate_configmap(directory, generator, out.docs)
        out.generated.add(generator["name"])
    for patch in spec.get("patches", []):
        _apply_patch(directory, patch, out.docs)
    if "namespace" in spec:
        for doc in out.docs:
            if doc["kind"] not in _CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        _set_image(out.docs, image)
    for replicas in spec.get("replicas", []):
        matches = [d for d in out.docs if d["kind"] == "Deployment" and d["metadata"]["name"] == replicas["name"]]
        if not matches:
            raise KustomizeError(f"{path}: replicas for unknown Deployment {replicas['name']}")
        for doc in matches:
            doc["spec"]["replicas"] = replicas["count"]
    ids = [(d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]) for d in out.docs]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise KustomizeError(f"{path}: duplicate resources {sorted(duplicates)}")
    return out


def _inside(directory: Path, target: Path, origin: Path) -> None:
    """kustomize's default load restrictor: files only from the kustomization's own directory tree."""
    if not target.resolve().is_relative_to(directory.resolve()):
        raise KustomizeError(f"{origin}: {target} is outside {directory} (kustomize refuses to load it)")


def _generate_configmap(directory: Path, generator: Mapping[str, Any], docs: list[Doc]) -> None:
    unknown = set(generator) - _GENERATOR_KEYS
    if unknown:
        raise KustomizeError(f"configMapGenerator {generator.get('name')}: unsupported fields {sorted(unknown)}")
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, sep, source = str(entry).partition("=")
        file = directory / (source if sep else key)
        _inside(directory, file, directory / "kustomization.yaml")
        if not file.is_file():
            raise KustomizeError(f"configMapGenerator {generator['name']}: {file} does not exist")
        data[key if sep else file.name] = file.read_text(encoding="utf-8")
    for literal in generator.get("literals", []):
        key, sep, value = str(literal).partition("=")
        if not sep:
            raise KustomizeError(f"configMapGenerator {generator['name']}: literal {literal!r} has no '='")
        data[key] = value
    behavior = generator.get("behavior", "create")
    existing = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == generator["name"]]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"configMapGenerator {generator['name']}: exists already (use behavior: merge)")
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data})
    elif behavior in ("merge", "replace"):
        if len(existing) != 1:
            raise KustomizeError(f"configMapGenerator {generator['name']}: nothing to {behavior}")
        if behavior == "merge":
            existing[0].setdefault("data", {}).update(data)
        else:
            existing[0]["data"] = data
    else:
        raise KustomizeError(f"configMapGenerator {generator['name']}: unknown behavior {behavior!r}")


def _apply_patch(directory: Path, patch: Mapping[str, Any], docs: list[Doc]) -> None:
    if set(patch) - {"target", "patch", "path"}:
        raise KustomizeError(f"patch: unsupported fields {sorted(set(patch) - {'target', 'patch', 'path'})}")
    if "path" in patch:
        file = directory / patch["path"]
        _inside(directory, file, directory / "kustomization.yaml")
        text = file.read_text(encoding="utf-8")
    else:
        text = patch["patch"]
    ops = yaml.safe_load(text)
    target = patch.get("target")
    if target is not None and set(target) - {"kind", "name", "group", "version", "namespace"}:
        raise KustomizeError(f"patch target: unsupported fields {sorted(target)}")
    if not isinstance(ops, list) or target is None:
        raise KustomizeError("patch: only JSON 6902 patches with a target are supported by this renderer")
    matched = [d for d in docs if _matches_target(d, target)]
    if not matched:
        raise KustomizeError(f"patch: no resource matches {target}")
    for doc in matched:
        for op in ops:
            _json_patch_op(doc, op)


def _matches_target(doc: Doc, target: Mapping[str, Any]) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    checks = {
        "kind": doc["kind"],
        "name": doc["metadata"]["name"],
        "group": group,
        "version": version,
        "namespace": doc["metadata"].get("namespace", ""),
    }
    return all(checks[key] == value for key, value in target.items())


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer {path!r} must start with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _json_patch_op(doc: Doc, op: Mapping[str, Any]) -> None:
    """RFC 6902 add / replace / remove / test."""
    parts = _pointer(op["path"])
    parent: Any = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    kind = op["op"]
    if kind == "test":
        current = parent[int(last)] if isinstance(parent, list) else parent[last]
        if current != op["value"]:
            raise KustomizeError(f"patch test failed at {op['path']}")
    elif isinstance(parent, list):
        if kind == "add":
            parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
        elif kind == "replace":
            parent[int(last)] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[int(last)]
        else:
            raise KustomizeError(f"unsupported patch op {kind!r}")
    else:
        if kind in ("replace", "remove") and last not in parent:
            raise KustomizeError(f"patch {kind}: {op['path']} does not exist")
        if kind in ("add", "replace"):
            parent[last] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[last]
        else:
            raise KustomizeError(f"unsupported patch op {kind!r}")


def _set_image(docs: list[Doc], image: Mapping[str, Any]) -> None:
    for doc in docs:
        if doc["kind"] not in _POD_TEMPLATE_KINDS:
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            name, _, tag = container["image"].partition(":")
            if name != image["name"]:
                continue
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


_HASH_SUFFIX = re.compile(r"^(?P<base>.+)-[a-z0-9]{10}$")


def strip_name_hashes(docs: Sequence[Doc], generated: set[str]) -> list[Doc]:
    """`kubectl kustomize` output with `<generated name>-<hash>` turned back into `<generated name>`."""
    renames: dict[str, str] = {}
    for doc in docs:
        match = _HASH_SUFFIX.match(doc["metadata"]["name"]) if doc["kind"] == "ConfigMap" else None
        if match and match["base"] in generated:
            renames[doc["metadata"]["name"]] = match["base"]
    text = json.dumps(list(docs))
    for hashed, plain in renames.items():
        text = text.replace(json.dumps(hashed), json.dumps(plain))
    result: list[Doc] = json.loads(text)
    return result


def canonical(docs: Sequence[Doc]) -> list[str]:
    """Order-independent comparable form of a set of resources."""
    return sorted(json.dumps(doc, sort_keys=True) for doc in docs)


# --- pods and containers ---------------------------------------------------------------------------------


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def container_env(container: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The environment a container starts with: envFrom ConfigMaps, then env ($(VAR) expanded).

    Values from the downward API become `<fieldRef:PATH>`; secret references raise (tests check that only
    the signer has secrets, and it has none in its environment)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" not in source:
            raise ValueError(f"unexpected envFrom source {source}")
        env.update(configmaps[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), str(item["value"]))
        elif "fieldRef" in item.get("valueFrom", {}):
            env[item["name"]] = f"<fieldRef:{item['valueFrom']['fieldRef']['fieldPath']}>"
        else:
            raise ValueError(f"unexpected env source {item}")
    return env


def named_ports(container: Mapping[str, Any]) -> dict[str, int]:
    return {p["name"]: int(p["containerPort"]) for p in container.get("ports", []) if "name" in p}


# --- NetworkPolicy -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    """A pod as NetworkPolicies see it."""

    labels: Mapping[str, str]
    namespace: str
    namespace_labels: Mapping[str, str]
    ports: Mapping[str, int] = field(default_factory=dict)  # named container ports


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Label selector semantics: matchLabels and matchExpressions; {} selects everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def _policy_types(policy: Doc) -> list[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return list(spec["policyTypes"])
    return ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, src: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # sources here are pods; the files under test use no ipBlock
    pod_selector = peer.get("podSelector")
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        namespace_ok = src.namespace == policy_namespace
    else:
        namespace_ok = selects(ns_selector, src.namespace_labels)
    pod_ok = True if pod_selector is None else selects(pod_selector, src.labels)
    return namespace_ok and pod_ok


def _port_matches(entry: Mapping[str, Any], dst: Pod, port: int) -> bool:
    if entry.get("protocol", "TCP") != "TCP":
        return False
    value = entry.get("port")
    if value is None:
        return True
    if isinstance(value, str):
        return dst.ports.get(value) == port
    end = entry.get("endPort", value)
    return int(value) <= port <= int(end)


def ingress_allowed(policies: Sequence[Doc], src: Pod, dst: Pod, port: int) -> bool:
    """Whether `src` may open a TCP connection to `dst:port` under `policies`."""
    applicable = [
        p
        for p in policies
        if p["metadata"].get("namespace", "") == dst.namespace
        and "Ingress" in _policy_types(p)
        and selects(p["spec"].get("podSelector", {}), dst.labels)
    ]
    if not applicable:
        return True  # not isolated for ingress
    for policy in applicable:
        for rule in policy["spec"].get("ingress") or []:
            peers = rule.get("from") or []
            peer_ok = not peers or any(_peer_matches(p, policy["metadata"].get("namespace", ""), src) for p in peers)
            ports = rule.get("ports") or []
            port_ok = not ports or any(_port_matches(entry, dst, port) for entry in ports)
            if peer_ok and port_ok:
                return True
    return False


# --- Dockerfile --------------------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def _logical_lines(text: str) -> list[str]:
    """Instructions with `\\` continuations joined; comment lines (also inside continuations) dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(" ".join(current.split()))
        current = ""
    if current.strip():
        lines.append(" ".join(current.split()))
    return lines


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    global_args: dict[str, str] = {}
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m[1], m[0]), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=base))
        elif not stages:
            if keyword == "ARG":
                key, _, default = rest.partition("=")
                global_args[key] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return stages


def stage_chain(stages: Sequence[Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    by_name = {s.name: s for s in stages}
    chain = [by_name[name]]
    while chain[-1].base in by_name:
        chain.append(by_name[chain[-1].base])
    return chain


def effective_user(stages: Sequence[Stage], name: str) -> str:
    """USER in force at the end of a stage ("root" when none is set anywhere up its chain)."""
    for stage in stage_chain(stages, name):
        users = stage.args("USER")
        if users:
            return users[-1]
    return "root"


def apt_packages(stage: Stage) -> set[str]:
    """Packages named by `apt-get install` in a stage's RUN instructions."""
    packages: set[str] = set()
    for command in stage.args("RUN"):
        for part in re.split(r"&&|;", command):
            words = shlex.split(part)
            if len(words) >= 2 and words[0] == "apt-get" and "install" in words:
                after = words[words.index("install") + 1 :]
                packages |= {w for w in after if not w.startswith("-")}
    return packages


def exec_form(arguments: str) -> list[str]:
    """`["a", "b"]` (JSON exec form) → list; shell form is refused (signals would not reach the process)."""
    value = json.loads(arguments)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"not an exec-form list: {arguments}")
    return value


# --- scripts/install_system_packages.sh ------------------------------------------------------------------


def system_requirements(script: Path) -> dict[str, str]:
    """`check → package` pairs of the REQUIREMENTS array."""
    block = script.read_text(encoding="utf-8").split("REQUIREMENTS=(", 1)[1].split(")", 1)[0]
    return dict(re.findall(r'"([^"|]+)\|([^"]+)"', block))


# --- compose -------------------------------------------------------------------------------------------------


def interpolate(value: str) -> str:
    """Compose `${VAR:-default}` / `${VAR}` with an empty environment (what a fresh checkout gets)."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m[2] or "", value)
