"""Ray job entrypoint for training: `ray job submit -- python jobs/train.py --train ... --out ...`.

Thin on purpose: the options and code path of `textclf train`. Inside a Ray job RAY_ADDRESS is set,
so training joins the job's cluster instead of starting local Ray.
"""

import sys

from textclf.cli import cli

if __name__ == "__main__":
    cli(["train", *sys.argv[1:]], prog_name="jobs/train.py")
