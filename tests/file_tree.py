"""What a test compares to show that a command changed nothing on disk."""

import hashlib
import os


def snapshot(root):
    """Every file and directory under `root`: `"dir"` or the file's SHA-256."""
    tree = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs:
            tree[os.path.relpath(os.path.join(directory, name), root)] = "dir"
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                tree[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return tree
