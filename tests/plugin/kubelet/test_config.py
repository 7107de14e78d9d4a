"""Opaque device config, table-driven from testdata/opaque_config.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gpupolicy.plugin.kubelet.config import ConfigError, config_for, parse_configs

TABLE = yaml.safe_load((Path(__file__).parent / "testdata" / "opaque_config.yaml").read_text())


@pytest.mark.parametrize("case", TABLE["cases"], ids=[c["name"] for c in TABLE["cases"]])
def test_opaque_config(case: dict[str, Any]) -> None:
    def resolve() -> Any:
        configs = parse_configs(TABLE["driver"], case["config"])
        chosen = config_for(configs, case["request"], bool(case.get("mig")))
        return None if chosen is None or chosen.sharing is None else chosen.sharing.to_wire()

    if "want_error" in case:
        with pytest.raises(ConfigError) as err:
            resolve()
        assert case["want_error"] in str(err.value)
    else:
        assert resolve() == case["want"]
