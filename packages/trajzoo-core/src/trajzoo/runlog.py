"""Send everything a pipeline step prints (Python logging, stdout, stderr and the C++ output of
fastmm) to the rule's ``log:`` file."""
from __future__ import annotations

import json
import hashlib
import logging
import os
import sys
from pathlib import Path


def setup_rule_logging(log_path: str | Path, level: int = logging.INFO) -> logging.Logger:
    """Redirect file descriptors 1 and 2 to ``log_path`` (append) and configure logging there.

    Returns the ``trajzoo`` logger. Under data parallelism (``RANK`` > 0 in the environment,
    :mod:`trajzoo.training.launch` or torchrun) only rank 0 writes the log: another rank's
    descriptors 1 and 2 go to ``os.devnull`` and it logs warnings and errors only.
    """
    if int(os.environ.get("RANK", "0")) > 0:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, force=True)
        return logging.getLogger("trajzoo")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return logging.getLogger("trajzoo")


def config_digest(obj) -> str:
    """First 12 hex digits of the SHA-256 of ``obj`` as canonical JSON (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
