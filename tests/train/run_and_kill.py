"""Run `t5kit pretrain CONFIG` and SIGKILL this process right after update KILL_AT_STEP is recorded.

Usage: python run_and_kill.py CONFIG KILL_AT_STEP. A helper of test_resume.py, not a test.
"""

import os
import signal
import sys

from t5kit.cli.main import main
from t5kit.train import trainer

config_path, kill_at = sys.argv[1], int(sys.argv[2])
record = trainer.Trainer._record


def record_then_kill(self, stats, progress):
    record(self, stats, progress)
    if self.step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


trainer.Trainer._record = record_then_kill
sys.exit(main(["pretrain", config_path]))
