"""The core library is lean: ``import cdbloss`` loads torch and numpy and nothing else."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import numpy, torch
before = set(sys.modules)
import cdbloss
loss = cdbloss.CDBLoss(3)
loss.update_weights(torch.tensor([0.5, 0.2, 0.9]))
new = sorted(m for m in set(sys.modules) - before)
print(json.dumps(new))
"""


def test_import_cdbloss_loads_only_torch_numpy_and_the_standard_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    new = json.loads(out.stdout.splitlines()[-1])
    third_party = {m.split(".")[0] for m in new} - set(sys.stdlib_module_names) - {"cdbloss"}
    assert third_party == set(), third_party
    # the experiment system (cdbloss.lab: engine, data, models, reports) is not part of it
    lab = [m for m in new if m.split(".")[1:2] == ["lab"]]
    assert lab == [], lab
