"""tools/deploy_config.py: the deploy job's overlay edit and kubeconfig, from the environment."""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml

from tools import deploy_config
from tools.deploy_config import ConfigError, kubeconfig, pointed

pytestmark = pytest.mark.unit

ENV = {"REPOSITORY": "quay.io/team/", "SHA": "abc123", "MODEL_URI": "runs:/r1/model"}


def test_the_overlay_points_at_this_commits_images_and_merges_the_config():
    overlay = yaml.safe_load(deploy_config.OVERLAY.read_text())
    result = pointed(overlay, ENV)
    assert result["resources"] == overlay["resources"]  # the rest untouched
    assert result["images"] == [
        {
            "name": "quay.io/cats-dogs-other/predictor",
            "newName": "quay.io/team/predictor",
            "newTag": "abc123",
        },
        {
            "name": "quay.io/cats-dogs-other/auth-proxy",
            "newName": "quay.io/team/auth-proxy",
            "newTag": "abc123",
        },
    ]
    assert result["configMapGenerator"] == [
        {
            "name": "cats-dogs-other-config",
            "behavior": "merge",
            "literals": ["MODEL_URI=runs:/r1/model"],
        }
    ]
    assert pointed(result, ENV) == result  # twice is once


def test_the_overlays_own_config_keys_stay_and_given_ones_win():
    overlay = {
        "configMapGenerator": [
            {
                "name": "cats-dogs-other-config",
                "behavior": "merge",
                "literals": ["PRECISION=int8", "MODEL_URI=old"],
            }
        ]
    }
    result = pointed(overlay, ENV)
    assert result["configMapGenerator"][0]["literals"] == [
        "PRECISION=int8",
        "MODEL_URI=runs:/r1/model",
    ]


@pytest.mark.parametrize(
    "env, message",
    [
        ({"SHA": "x"}, "REPOSITORY is not set"),
        ({"REPOSITORY": "r"}, "SHA is not set"),
        ({**ENV, "MODEL_URI": "runs:/x\nEVIL=1"}, "MODEL_URI holds a control character"),
    ],
)
def test_missing_or_odd_values_are_refused_by_name(env, message):
    with pytest.raises(ConfigError, match=message):
        pointed({"resources": []}, env)


def test_the_kubeconfig_holds_the_token_and_is_written_for_its_owner_only(tmp_path, monkeypatch):
    env = {
        "OPENSHIFT_SERVER": "https://api.example:6443",
        "OPENSHIFT_TOKEN": "sha256~secret",
        "OPENSHIFT_NAMESPACE": "team",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "kubeconfig"
    path.write_text("left by someone")
    path.chmod(0o644)
    assert deploy_config.main(["kubeconfig", str(path)]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    written = json.loads(path.read_text())
    assert written == kubeconfig(env)
    assert written["users"][0]["user"]["token"] == "sha256~secret"
    assert written["contexts"][0]["context"]["namespace"] == "team"
    with pytest.raises(ConfigError, match="https"):
        kubeconfig({**env, "OPENSHIFT_SERVER": "http://api.example"})
