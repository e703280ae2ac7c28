"""The README stays true: its configuration table is the code's, and CI runs
exactly the test command it gives."""

import re
from pathlib import Path

from worker.config import render_config_table

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_configuration_table_matches_the_settings():
    block = re.search(r"<!-- config-table:start -->\n(.*?)<!-- config-table:end -->",
                      README, re.S)

    assert block is not None
    assert block.group(1).strip() == render_config_table().strip()


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^(make \w+)\s+# ", README, re.M)
    ci = (REPO / ".ci" / "run").read_text()

    assert commands[:2] == ["make demo", "make test"]
    assert re.search(r"^make test$", ci, re.M)
