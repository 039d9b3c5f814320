import pytest

from studio.config import settings_from
from studio.errors import InvalidRequest


def test_defaults_bind_localhost_7860():
    s = settings_from([], env={})
    assert (s.host, s.port, s.share, s.device, s.concurrency) == ("127.0.0.1", 7860, False, "auto", 1)


def test_flags_and_listen():
    s = settings_from(["--listen", "--port", "7861", "--share", "--device", "cpu", "--dtype", "float32",
                       "--offline", "--default-model", "demo", "--auth", "a:b,c:d"], env={})
    assert (s.host, s.port, s.share, s.device, s.dtype, s.offline, s.default_model) == \
        ("0.0.0.0", 7861, True, "cpu", "float32", True, "demo")
    assert s.auth == (("a", "b"), ("c", "d"))


def test_environment_twins_and_flag_precedence(tmp_path):
    env = {"STUDIO_PORT": "9000", "STUDIO_OFFLINE": "1", "STUDIO_MODELS_DIR": str(tmp_path),
           "STUDIO_HOST": "127.0.0.2"}
    s = settings_from(["--port", "9001"], env=env)
    assert (s.port, s.offline, s.models_dir, s.host) == (9001, True, tmp_path.resolve(), "127.0.0.2")


def test_hf_hub_offline_implies_offline():
    assert settings_from([], env={"HF_HUB_OFFLINE": "1"}).offline


def test_auth_file(tmp_path):
    f = tmp_path / "users.txt"
    f.write_text("alice:secret\nbob:pw\n")
    assert settings_from(["--auth", str(f)], env={}).auth == (("alice", "secret"), ("bob", "pw"))


def test_bad_env_value_names_it():
    with pytest.raises(InvalidRequest, match="STUDIO_PORT"):
        settings_from([], env={"STUDIO_PORT": "abc"})
    assert settings_from([], env={"STUDIO_PORT": "", "STUDIO_MODELS_DIR": " "}).port == 7860   # empty = not set


def test_models_dir_that_does_not_exist_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "my-modles"
    with pytest.raises(InvalidRequest, match=f"--models-dir {missing} does not exist"):
        settings_from(["--models-dir", str(missing)], env={})
    with pytest.raises(InvalidRequest, match="does not exist"):
        settings_from([], env={"STUDIO_MODELS_DIR": str(missing)})
    assert not missing.exists()                                  # not created behind the user's back


def test_cache_dir_flag_and_default(tmp_path):
    from studio.config import ROOT

    assert settings_from([], env={}).cache_dir == ROOT / ".cache"
    assert settings_from(["--cache-dir", str(tmp_path)], env={}).cache_dir == tmp_path.resolve()


def test_import_by_path_is_offered_only_where_no_one_else_can_reach_the_studio():
    assert settings_from([], env={}).imports_allowed
    assert not settings_from(["--listen"], env={}).imports_allowed
    assert not settings_from(["--share"], env={}).imports_allowed
    assert not settings_from(["--host", "192.168.1.5"], env={}).imports_allowed
    assert settings_from(["--listen", "--allow-import-paths"], env={}).imports_allowed
    assert settings_from(["--share"], env={"STUDIO_ALLOW_IMPORT_PATHS": "1"}).imports_allowed
