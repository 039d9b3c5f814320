"""Components in the memory tiers and per-lease adapters, with fakes: a few kilobytes of "VRAM"."""

from __future__ import annotations

import threading
import time

import pytest

from studio.errors import ModelUnavailable
from studio.models import report
from studio.models.adapters import Adapter
from studio.models.manager import CPU, GPU, LeasePlan, ModelManager
from studio.models.memory import FakeDevice
from studio.requests import Task

from models_fakes import Blob, FakeLoader, entry

KB = 1024
SIZES = {"a": {"transformer": 3 * KB, "vae": 1 * KB}, "b": {"transformer": 3 * KB, "vae": 1 * KB}}


def make(gpu: int = 10 * KB, cpu: int = 100 * KB, reserve: int = 1 * KB, adapters=None):
    device = FakeDevice(gpu)
    loader = FakeLoader(device, SIZES)
    loader.component_bytes = 2 * KB
    extra = {"adapters": adapters} if adapters is not None else {}
    return ModelManager(loader, device=device, cpu_budget=cpu, gpu_reserve=reserve, **extra), loader, device


def where(m) -> dict[str, str]:
    return {r.id: r.where for r in m.loaded()}


def test_controlnet_on_the_gpu_counts_as_vram_and_is_demoted_before_anything_is_dropped(tmp_path):
    m, loader, device = make()
    plan = LeasePlan(controlnets=(str(tmp_path / "cn"),))
    with m.lease(entry("a"), Task.TXT2IMG, plan) as pipe:
        cn = pipe.components["controlnet"]
    [comp] = m.components()
    assert comp.where == GPU and loader.on_gpu(cn)
    assert device.used == 6 * KB                                  # a (4 KB) + its ControlNet (2 KB), once each
    mem = m.memory()
    assert mem["gpu_cached"] == 6 * KB and mem["cpu_cached"] == 0
    with m.lease(entry("a")):                                      # a used again: the ControlNet is the LRU
        pass
    with m.lease(entry("b")):                                      # needs 4 KB: 3 KB free over the reserve
        pass
    assert m.components()[0].where == CPU and not loader.on_gpu(cn)
    assert where(m) == {"a": GPU, "b": GPU}                        # demoted one component, dropped nothing
    assert [c.path for c in m.components()] == [str(tmp_path / "cn")] and loader.loads == ["a", "b"]
    assert m.memory()["cpu_cached"] == 2 * KB and device.used == 8 * KB
    with m.lease(entry("a"), Task.TXT2IMG, plan) as pipe:          # back with its pipeline: b makes room
        assert pipe.components["controlnet"] is cn and loader.on_gpu(cn)
    assert m.components()[0].where == GPU and where(m) == {"a": GPU, "b": CPU}


def test_a_component_demoted_with_no_ram_left_is_dropped(tmp_path):
    m, loader, device = make(cpu=2 * KB - 1)                       # RAM cannot hold the 2 KB ControlNet
    with m.lease(entry("a"), Task.TXT2IMG, LeasePlan(controlnets=(str(tmp_path / "cn"),))):
        pass
    with m.lease(entry("a")):
        pass
    with m.lease(entry("b")):
        pass
    assert m.components() == [] and m.loaded()[0].tasks == ()      # the controlled pipeline went with it
    assert device.used == 8 * KB


class Recording(Adapter):
    """An adapter that records what the lease asks of it; ``fail`` makes apply raise after using."""

    def __init__(self, field: str, log: list, *, fail: bool = False, on_accelerator: bool = False) -> None:
        self.field, self.log, self.fail, self.on_accelerator = field, log, fail, on_accelerator

    def apply(self, ctx, pipe, part):
        for path, _ in part:
            ctx.use("ip_adapter", path, on_accelerator=self.on_accelerator)
        self.log.append(("apply", self.field, part))
        if self.fail:
            raise ModelUnavailable(f"{self.field} does not fit")

    def reset(self, ctx, pipe, part):
        self.log.append(("reset", self.field, part))


def test_adapters_apply_in_order_and_reset_in_reverse_even_after_a_failure(tmp_path):
    log: list = []
    m, _, _ = make(adapters=(Recording("loras", log), Recording("ip_adapters", log)))
    plan = LeasePlan(loras=(("l.safetensors", 0.5),), ip_adapters=((str(tmp_path / "ip"), 0.7),))
    with m.lease(entry("a"), Task.TXT2IMG, plan):
        assert [x[:2] for x in log] == [("apply", "loras"), ("apply", "ip_adapters")]
        assert m.components()[0].in_use
    assert [x[:2] for x in log[2:]] == [("reset", "ip_adapters"), ("reset", "loras")]
    assert not m.components()[0].in_use and not m.loaded()[0].in_use
    with m.lease(entry("a")):                                       # a plain lease touches no adapter
        pass
    assert len(log) == 4

    log.clear()
    m, _, _ = make(adapters=(Recording("loras", log), Recording("ip_adapters", log, fail=True)))
    with pytest.raises(ModelUnavailable, match="does not fit"):
        with m.lease(entry("a"), Task.TXT2IMG, plan):
            pass
    assert [x[:2] for x in log] == [("apply", "loras"), ("apply", "ip_adapters"),
                                    ("reset", "ip_adapters"), ("reset", "loras")]
    assert not m.components()[0].in_use and not m.loaded()[0].in_use


def test_adapter_components_go_where_the_model_computes_and_count_there(tmp_path):
    m, loader, device = make(adapters=(Recording("ip_adapters", [], on_accelerator=True),))
    plan = LeasePlan(ip_adapters=((str(tmp_path / "ip"), 1.0),))
    with m.lease(entry("a"), Task.TXT2IMG, plan):
        [comp] = m.components()
        assert comp.where == GPU and comp.in_use
    assert m.memory()["gpu_cached"] == 4 * KB + comp.bytes and device.used == 4 * KB + comp.bytes


def test_a_lease_with_adapters_has_the_model_to_itself(tmp_path):
    m, _, _ = make(adapters=(Recording("loras", []),))
    plan = LeasePlan(loras=(("l.safetensors", 1.0),))
    order: list[str] = []
    inside = threading.Event()

    def adapted():
        with m.lease(entry("a"), Task.TXT2IMG, plan):
            inside.set()
            time.sleep(0.3)
            order.append("adapted done")

    def plain():
        inside.wait(5)
        with m.lease(entry("a"), Task.IMG2IMG):
            order.append("plain ran")

    threads = [threading.Thread(target=adapted), threading.Thread(target=plain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert order == ["adapted done", "plain ran"]
    with m.lease(entry("a")):                                        # the same thread may nest leases
        with m.lease(entry("a"), Task.TXT2IMG, plan):
            pass


def test_preprocessor_weights_are_a_component_built_once(tmp_path):
    m, _, _ = make(cpu=4 * KB)
    m.device.accelerator = False
    built = []

    def build():
        built.append(1)
        return Blob(3 * KB)

    first = m.component("preprocessor", "depth-tiny", build=build)
    assert m.component("preprocessor", "depth-tiny", build=build) is first and built == [1]
    [row] = report.component_rows(m)
    assert row[:5] == ["depth-tiny", "preprocessor", "component", CPU, "3.00 KB"]
    m.component("controlnet", tmp_path / "cn")                       # 2 KB more: over the 4 KB budget
    assert [c.kind for c in m.components()] == ["controlnet"]         # the LRU (the detector) was dropped
    m.component("preprocessor", "depth-tiny", build=build)
    assert built == [1, 1]
