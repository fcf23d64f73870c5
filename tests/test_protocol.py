"""Finding methods: built-ins, a user's package through the entry-point group, files; names that would collide."""
import pytest

from progbench.errors import UserError
from progbench.protocol import available_methods, get_method


def _install_user_package(root, body: str) -> None:
    """A user's package as pip leaves it: a module plus a dist-info declaring the ``progbench.methods`` entry point."""
    (root / "mymethods.py").write_text(body)
    dist = root / "mymethods-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mymethods\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[progbench.methods]\nmine = mymethods:Mine\n")


def test_entry_point_method_is_found(tmp_path, monkeypatch):
    _install_user_package(tmp_path, "from progbench.methods.scratch import Scratch\n\n\n"
                                    "class Mine(Scratch):\n    name = 'mine'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert available_methods()["mine"] == "mymethods:Mine"
    assert get_method("mine").name == "mine"
    assert get_method("kd").name == "kd"  # built-ins stay


def test_inherited_name_is_refused(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from progbench.methods.kd import KD\n\n\nclass Tweaked(KD):\n    pass\n")
    with pytest.raises(UserError, match="must set its own class attribute `name`"):
        get_method(f"{path}:Tweaked")


def test_taken_name_is_refused(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("from progbench.methods.kd import KD\n\n\nclass Other(KD):\n    name = 'kd'\n")
    with pytest.raises(UserError, match="is named 'kd', which is taken by progbench.methods.kd:KD"):
        get_method(f"{path}:Other")
