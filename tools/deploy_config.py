"""The deploy workflow's two edits, from environment variables (never from a command line, where
any process on the runner can read them):

    python -m tools.deploy_config manifests         # the overlay: this commit's images, the run
    python -m tools.deploy_config kubeconfig PATH   # the cluster, its token, the namespace

`manifests` does what `kustomize edit set image` and `kustomize edit add configmap --behavior=merge`
did (no kustomize binary needed): it sets the overlay's `images` to $REPOSITORY/<image>:$SHA and
merges the ConfigMap keys named in CONFIG_KEYS from the environment. `kubeconfig` writes a
kubeconfig (mode 0600) for $OPENSHIFT_SERVER with $OPENSHIFT_TOKEN, in $OPENSHIFT_NAMESPACE.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = ROOT / "manifests" / "overlays" / "openshift" / "kustomization.yaml"
IMAGES = ("predictor", "auth-proxy")
PUBLISHED = "quay.io/cats-dogs-other"  # the names the manifests use
CONFIG_MAP = "cats-dogs-other-config"
CONFIG_KEYS = (
    "MODEL_URI",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "OAUTH2_ISSUER",
    "OAUTH2_AUDIENCE",
)


class ConfigError(ValueError):
    pass


def required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set")
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ConfigError(f"{name} holds a control character")
    return value


def pointed(kustomization: dict, env: Mapping[str, str]) -> dict:
    """The overlay with this commit's images and the ConfigMap keys set in `env` merged in."""
    repository, sha = required(env, "REPOSITORY").rstrip("/"), required(env, "SHA")
    result = dict(kustomization)
    kept = [i for i in result.get("images", []) if i["name"] not in _names()]
    result["images"] = kept + [
        {"name": f"{PUBLISHED}/{image}", "newName": f"{repository}/{image}", "newTag": sha}
        for image in IMAGES
    ]
    # no control characters in a ConfigMap value either (required() refuses them)
    given = {key: required(env, key) for key in CONFIG_KEYS if env.get(key)}
    generators = list(result.get("configMapGenerator", []))
    ours = next((g for g in generators if g.get("name") == CONFIG_MAP), None)
    if given:
        if ours is None:
            ours = {"name": CONFIG_MAP, "behavior": "merge", "literals": []}
            generators.append(ours)
        # As `kustomize edit add configmap --behavior=merge`: the overlay's other keys stay.
        kept = [item for item in ours.get("literals", []) if item.split("=", 1)[0] not in given]
        ours["literals"] = kept + [f"{key}={value}" for key, value in given.items()]
        result["configMapGenerator"] = generators
    return result


def _names() -> set[str]:
    return {f"{PUBLISHED}/{image}" for image in IMAGES}


def kubeconfig(env: Mapping[str, str]) -> dict:
    """A kubeconfig for one cluster, one token and one namespace."""
    server = required(env, "OPENSHIFT_SERVER")
    if not server.startswith("https://"):
        raise ConfigError("OPENSHIFT_SERVER must be an https:// URL")
    context = {"cluster": "openshift", "user": "deployer"}
    namespace = env.get("OPENSHIFT_NAMESPACE", "")
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "openshift", "cluster": {"server": server}}],
        "users": [{"name": "deployer", "user": {"token": required(env, "OPENSHIFT_TOKEN")}}],
        "contexts": [{"name": "openshift", "context": context}],
        "current-context": "openshift",
    }


def main(argv: list[str]) -> int:
    try:
        match argv:
            case ["manifests"]:
                document = yaml.safe_load(OVERLAY.read_text())
                OVERLAY.write_text(yaml.safe_dump(pointed(document, os.environ), sort_keys=False))
                print(f"{OVERLAY.relative_to(ROOT)}: images at {os.environ['SHA']}")
            case ["kubeconfig", path]:
                text = json.dumps(kubeconfig(os.environ), indent=2)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                os.fchmod(fd, 0o600)  # a file that was there keeps its mode otherwise
                with os.fdopen(fd, "w") as file:
                    file.write(text)
                print(f"{path}: a kubeconfig for the cluster, mode 0600")
            case _:
                print(__doc__, file=sys.stderr)
                return 2
    except ConfigError as exc:
        print(f"deploy_config: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
