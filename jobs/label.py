"""Ray job entrypoint for labeling: `ray job submit --working-dir . -- python jobs/label.py MODEL INPUT OUTPUT`.

Thin on purpose: the options and code path of `textclf label`. Inside a Ray job RAY_ADDRESS is set,
so labeling joins the job's cluster instead of starting local Ray.
"""

import sys
from pathlib import Path

# `python jobs/label.py` puts jobs/ on the path, not the project: make textclf importable from an
# uploaded working_dir without installing it
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textclf.cli import cli  # noqa: E402

if __name__ == "__main__":
    cli(["label", *sys.argv[1:]], prog_name="jobs/label.py")
