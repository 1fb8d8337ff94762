"""A small renderer of our kustomizations, so CI can check the manifests offline.

No kustomize binary comes from PyPI or npm, so the deployment test renders
deploy/kubernetes/ itself with the kustomize features it uses, and refuses any
other (a new field in a kustomization fails here, not silently):

- `resources`: files of objects, or directories holding a kustomization;
- `namespace`, `images` (newName, newTag, digest), `replicas`;
- `configMapGenerator` and `secretGenerator` (`files`, `envs`, `literals`,
  `behavior: create`, `type`, `options.disableNameSuffixHash`), with
  kustomize's name suffix (a hash of the content) and the references to the
  generated names in pod templates rewritten, as kustomize does;
- `generatorOptions.disableNameSuffixHash`.

Where `kubectl kustomize` is installed, the test also checks that this renders
what it renders.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

_KNOWN = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "replicas",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
}
_GENERATOR_KEYS = {"name", "files", "envs", "literals", "behavior", "type", "options"}
# Kinds that have no namespace (kustomize leaves them alone under `namespace`).
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}


class KustomizeError(Exception):
    pass


def render(directory: Path) -> list[Object]:
    """The objects `kustomize build directory` makes, in a stable order."""
    return sorted(_build(directory), key=lambda o: (o["kind"], o["metadata"]["name"]))


@dataclass
class _Generated:
    kind: str
    original: str
    name: str


def _build(directory: Path) -> list[Object]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(path.read_text()) or {}
    unknown = set(spec) - _KNOWN
    if unknown:
        raise KustomizeError(f"{path}: not supported by this renderer: {sorted(unknown)}")
    objects: list[Object] = []
    generated: list[_Generated] = []
    for resource in spec.get("resources", []):
        target = directory / resource
        if target.is_dir():
            objects.extend(_build(target))
        else:
            objects.extend(o for o in yaml.safe_load_all(target.read_text()) if o)
    options = spec.get("generatorOptions", {})
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in spec.get(key, []):
            made = _generate(directory, kind, generator, options)
            generated.append(_Generated(kind, generator["name"], made["metadata"]["name"]))
            objects.append(made)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in _CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    for obj in objects:
        for item in generated:
            _rename_references(obj, item)
        for image in spec.get("images", []):
            _set_image(obj, image)
        for replicas in spec.get("replicas", []):
            if obj["metadata"]["name"] == replicas["name"] and "replicas" in obj.get("spec", {}):
                obj["spec"]["replicas"] = replicas["count"]
    return objects


def _generate(directory: Path, kind: str, generator: Object, options: Object) -> Object:
    unknown = set(generator) - _GENERATOR_KEYS
    if unknown or generator.get("behavior", "create") != "create":
        raise KustomizeError(f"{generator.get('name')}: not supported: {sorted(unknown)}")
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, _, file_name = entry.rpartition("=")
        source = directory / file_name
        data[key or source.name] = source.read_text()
    for env_file in generator.get("envs", []):
        for line in (directory / env_file).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                data[key.strip()] = value
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    name = generator["name"]
    made: Object = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    if kind == "Secret":
        made["type"] = generator.get("type", "Opaque")
        made["data"] = {key: _base64(value) for key, value in data.items()}
    else:
        made["data"] = data
    no_hash = generator.get("options", {}).get(
        "disableNameSuffixHash", options.get("disableNameSuffixHash", False)
    )
    if not no_hash:
        made["metadata"]["name"] = f"{name}-{_name_hash(made)}"
    return made


def _base64(text: str) -> str:
    """kustomize's base64 of a Secret value (kyaml encodeBase64): from 70 characters
    on, lines of 70, each ending in a newline (the name hash is over this form)."""
    encoded = base64.b64encode(text.encode()).decode()
    if len(encoded) < 70:
        return encoded
    return "".join(encoded[i : i + 70] + "\n" for i in range(0, len(encoded), 70))


def _go_json(value: Any) -> str:
    """What Go's json.Marshal writes: sorted keys, no spaces, HTML characters escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _name_hash(obj: Object) -> str:
    """kustomize's suffix (api/hasher): sha256 of the JSON of kind, name, (type) and
    data, its first ten hex digits with some digits swapped for letters. The name
    it hashes is always empty: it looks up `metadata/name` as one key, which no
    object has (kustomize v5; the suffixes `kubectl kustomize` makes agree)."""
    encoded: Object = {"kind": obj["kind"], "name": "", "data": obj["data"]}
    if obj["kind"] == "Secret":
        encoded["type"] = obj["type"]
    digest = hashlib.sha256(_go_json(encoded).encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _pod_specs(obj: Object) -> Iterator[Object]:
    spec = obj.get("spec", {})
    if obj["kind"] == "Pod":
        yield spec
    elif "template" in spec:
        yield spec["template"].get("spec", {})
    elif obj["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def _rename_references(obj: Object, item: _Generated) -> None:
    def rename(holder: Object, key: str) -> None:
        if holder.get(key) == item.original:
            holder[key] = item.name

    for pod in _pod_specs(obj):
        for volume in pod.get("volumes", []):
            if item.kind == "ConfigMap" and "configMap" in volume:
                rename(volume["configMap"], "name")
            if item.kind == "Secret" and "secret" in volume:
                rename(volume["secret"], "secretName")
            for source in volume.get("projected", {}).get("sources", []):
                field = "configMap" if item.kind == "ConfigMap" else "secret"
                if field in source:
                    rename(source[field], "name")
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                field = "configMapKeyRef" if item.kind == "ConfigMap" else "secretKeyRef"
                if field in ref:
                    rename(ref[field], "name")
            for env_from in container.get("envFrom", []):
                field = "configMapRef" if item.kind == "ConfigMap" else "secretRef"
                if field in env_from:
                    rename(env_from[field], "name")
        for pull in pod.get("imagePullSecrets", []) if item.kind == "Secret" else []:
            rename(pull, "name")
    if obj["kind"] == "Ingress" and item.kind == "Secret":
        for tls in obj["spec"].get("tls", []):
            rename(tls, "secretName")


def _set_image(obj: Object, image: Object) -> None:
    for pod in _pod_specs(obj):
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            current = container.get("image", "")
            name, tag = _split_image(current)
            if name != image["name"]:
                continue
            new_name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{new_name}@{image['digest']}"
            else:
                new_tag = image.get("newTag", tag)
                container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _split_image(image: str) -> tuple[str, str | None]:
    name, _, digest = image.partition("@")
    if digest:
        return name, None
    head, _, last = name.rpartition("/")
    if ":" in last:
        last, _, tag = last.partition(":")
        return (f"{head}/{last}" if head else last), tag
    return name, None


def as_yaml(objects: list[Object]) -> str:
    return "---\n".join(yaml.safe_dump(copy.deepcopy(o), sort_keys=True) for o in objects)
