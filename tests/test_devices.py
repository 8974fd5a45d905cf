"""The device API (DyNet 2.1): available_devices, get_device_info/DeviceInfo, device= arguments,
to_device with gradients across devices, bad device names, GPU requests without a GPU, the backend
switch. Cross-device code is exercised on a simulated GPU (host memory, the generic implementation),
so it runs on every CPU; tests/test_gpu_kernels.py covers the real GPU where CuPy sees one."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dynet as dy
from dynet.core import device, config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


SIM = "GPU:7"


@pytest.fixture
def sim_gpu():
    """GPU:7 simulated on the host (NumPy memory, generic implementation) beside the devices."""
    device.simulate_gpu(7)
    dy.renew_cg()
    yield device.get_device(SIM)
    device.configure(config.state)
    dy.renew_cg()


def cupy_gpu():
    ok, _ = device.gpu_available()
    return ok


def test_available_devices_and_info():
    names = dy.available_devices()
    assert names[0] == device.default_device().name and "CPU" in names
    if device.backend() != "gpu":
        assert names == ["CPU"]
    info = dy.get_device_info("CPU")
    assert isinstance(info, dy.DeviceInfo)
    assert (info.name, info.id, info.type) == ("CPU", 0, dy.DeviceInfo.CPU)


@pytest.mark.parametrize("make", [
    lambda: dy.ParameterCollection().add_parameters(2, device="GPU:1"),
    lambda: dy.ParameterCollection().add_parameters(2, device="FOO:1"),
    lambda: dy.ParameterCollection().add_lookup_parameters((3, 2), device="GPU:1"),
    lambda: dy.vecInput(2, "GPU:1"),
    lambda: dy.inputTensor(np.ones(2), device="GPU:3"),
    lambda: dy.inputVector([1.0, 2.0], device="TPU"),
    lambda: dy.scalarInput(1.0, device="GPU:9"),
    lambda: dy.to_device(dy.inputVector([1.0]), "GPU:9"),
    lambda: dy.get_device_info("GPU:9"),
])
def test_unknown_devices_raise_naming_them(make):
    with pytest.raises(RuntimeError) as e:
        make()
    msg = str(e.value)
    assert "Invalid device name" in msg and "available devices: " in msg and "CPU" in msg
    assert any(n in msg for n in ("GPU:1", "FOO:1", "GPU:3", "TPU", "GPU:9"))


def test_a_bad_device_adds_nothing():
    m = dy.ParameterCollection()
    with pytest.raises(RuntimeError):
        m.add_parameters(2, device="GPU:1", name="w")
    m.add_parameters(2, name="w")        # the name was not taken by the failed call
    assert [p.name() for p in m.parameters_list()] == ["/w"]


def test_device_names_and_defaults():
    m = dy.ParameterCollection()
    for name in (None, ""):
        assert m.add_parameters(2, device=name).device() == device.default_device().name
    for name in ("CPU", "cpu", b"CPU", "CPU:0"):
        assert m.add_parameters(2, device=name).device() == "CPU"
    x = dy.inputVector([1.0, 2.0], device="CPU")
    assert x.device() == "CPU" and (x * 2).device() == "CPU"
    with pytest.raises(TypeError):
        dy.vecInput(2, device=3.5)


def test_to_device_on_one_device_copies_and_passes_gradients():
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 3), init=dy.NumpyInitializer(np.arange(6.0).reshape(2, 3)))
    x = dy.inputVector([1.0, -1.0, 2.0])
    h = W * x
    y = dy.to_device(h, "CPU")
    np.testing.assert_allclose(y.npvalue(), h.npvalue())
    dy.squared_norm(y).backward()
    want = 2 * np.outer(h.npvalue(), [1.0, -1.0, 2.0])
    np.testing.assert_allclose(W.grad_as_array(), want, rtol=1e-6)


def test_gpu_requests_without_a_gpu_say_what_to_do():
    if cupy_gpu():
        pytest.skip("a GPU is usable here")
    ok, why = device.gpu_available()
    with pytest.raises(RuntimeError) as e:
        p = dy.DynetParams()
        p.set_requested_gpus(1)
        p.init()
    assert why in str(e.value)
    try:
        import cupy  # noqa: F401
        assert "no usable GPU" in why or "no GPU" in why or "cannot load CUDA" in why
    except ImportError:
        assert "pip install" in why and "cupy" in why.lower()
    dy.DynetParams().init()
    assert dy.available_devices() == ["CPU"]
    dy.DynetParams().init()


def run(code, *args, env=None):
    e = dict(os.environ, PYTHONPATH=ROOT)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=120)


def test_backend_from_environment_and_flag():
    code = "import dynet; from dynet.core import device; print(device.backend())"
    assert run(code, env={"DYNET_BACKEND": ""}).stdout.split() == ["typed"]
    assert run(code, env={"DYNET_BACKEND": "generic"}).stdout.split() == ["generic"]
    assert run(code, "--dynet-backend", "generic").stdout.split() == ["generic"]
    out = run(code, env={"DYNET_BACKEND": "fast"})
    assert out.returncode != 0 and "DYNET_BACKEND" in out.stderr and "'fast'" in out.stderr


def test_gdynet_and_gpu_flags_without_gpu():
    if cupy_gpu():
        pytest.skip("a GPU is usable here")
    for args in (["--dynet-gpus", "1"], ["--dynet-gpu-ids", "0"], ["--dynet-devices", "CPU,GPU:0"]):
        out = run("import dynet", *args)
        assert out.returncode != 0 and "RuntimeError" in out.stderr and "GPU:0" in out.stderr
    out = run("import _gdynet")
    assert out.returncode != 0 and "_gdynet needs a GPU" in out.stderr
    out = run("import dynet_config; dynet_config.set_gpu(); import dynet")
    assert out.returncode != 0 and "no GPU can be used" in out.stderr


def test_devices_flag_names_the_default():
    out = run("import dynet as dy; print(dy.available_devices())", "--dynet-devices", "CPU")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['CPU']"
    out = run("import dynet", "--dynet-devices", "CPU,FOO")
    assert out.returncode != 0 and "Invalid device name" in out.stderr and "FOO" in out.stderr


# ---- across devices (a simulated GPU) -------------------------------------------------------

def test_parameters_and_inputs_on_another_device(sim_gpu):
    assert dy.available_devices()[-1] == SIM
    m = dy.ParameterCollection()
    W = m.add_parameters((2, 3), init=dy.NumpyInitializer(np.arange(6.0).reshape(2, 3)), device=SIM)
    assert W.device() == SIM
    assert dy.get_device_info(SIM).type == dy.DeviceInfo.GPU
    e = dy.parameter(W)
    assert e.device() == SIM
    np.testing.assert_allclose(e.npvalue(), np.arange(6.0).reshape(2, 3))
    x = dy.inputVector([1.0, 2.0, 3.0], device=SIM)
    assert x.device() == SIM


def test_mixing_devices_names_both(sim_gpu):
    m = dy.ParameterCollection()
    W = m.add_parameters((2,), device=SIM)
    x = dy.inputVector([1.0, 2.0], device="CPU")
    with pytest.raises(RuntimeError) as e:
        dy.parameter(W) + x
    assert SIM in str(e.value) and "CPU" in str(e.value) and "to_device" in str(e.value)


def test_gradients_flow_back_across_devices(sim_gpu):
    m = dy.ParameterCollection()
    A = np.arange(6.0).reshape(2, 3) / 10
    W = m.add_parameters((2, 3), init=dy.NumpyInitializer(A), device=SIM)
    E = m.add_lookup_parameters((4, 2), init=dy.NumpyInitializer(np.arange(8.0).reshape(4, 2)),
                                device=SIM)
    w_cpu = dy.to_device(dy.parameter(W), "CPU")
    rows = dy.to_device(dy.lookup_batch(E, [1, 3, 1]), "CPU")
    np.testing.assert_allclose(rows.npvalue(), np.arange(8.0).reshape(4, 2)[[1, 3, 1]].T)
    loss = dy.squared_norm(w_cpu) + dy.sum_batches(dy.squared_norm(rows))
    loss.backward()
    np.testing.assert_allclose(W.grad_as_array(), 2 * A, rtol=1e-6)
    g = np.zeros((4, 2))
    for r in (1, 3, 1):
        g[r] += 2 * np.arange(8.0).reshape(4, 2)[r]
    np.testing.assert_allclose(E.grad_as_array(), g, rtol=1e-6)
    t = dy.SimpleSGDTrainer(m, learning_rate=0.1)
    t.set_clip_threshold(0)
    t.update()
    np.testing.assert_allclose(W.as_array(), A - 0.1 * 2 * A, rtol=1e-6)
    np.testing.assert_allclose(E.as_array(), np.arange(8.0).reshape(4, 2) - 0.1 * g, rtol=1e-6)
    assert not W.grad_as_array().any() and not E.grad_as_array().any()


def test_weight_decay_and_save_load_on_another_device(sim_gpu, tmp_path):
    m = dy.ParameterCollection()
    m.set_weight_decay_lambda(0.5)
    W = m.add_parameters((2, 2), init=dy.NumpyInitializer(np.eye(2)), device=SIM)
    t = dy.SimpleSGDTrainer(m, learning_rate=0.0)
    for _ in range(3):
        dy.renew_cg()
        dy.squared_norm(dy.to_device(dy.parameter(W), "CPU")).backward()
        t.update()
    dy.renew_cg()
    np.testing.assert_allclose(dy.parameter(W).npvalue(), np.eye(2) * 0.125, rtol=1e-6)
    path = str(tmp_path / "m")
    m.save(path)
    m2 = dy.ParameterCollection()
    W2 = m2.add_parameters((2, 2), device=SIM)
    m2.populate(path)
    np.testing.assert_allclose(W2.as_array(), np.eye(2) * 0.125, rtol=1e-6)
    dy.save(path + "b", [W])
    (W3,) = dy.load(path + "b", dy.ParameterCollection())
    np.testing.assert_allclose(W3.as_array(), np.eye(2) * 0.125, rtol=1e-6)


def test_lookup_set_on_another_device(sim_gpu):
    m = dy.ParameterCollection()
    E = m.add_lookup_parameters((4, 2), init=dy.NumpyInitializer(np.arange(8.0).reshape(4, 2)),
                                device=SIM)
    e = dy.lookup(E, 1)
    y = dy.to_device(e, "CPU")
    np.testing.assert_allclose(y.npvalue(), [2.0, 3.0])
    e.set(3)                                       # the generic path must not keep the old row
    np.testing.assert_allclose(y.npvalue(), [6.0, 7.0])


def test_generic_device_runs_a_whole_model(sim_gpu):
    """A small tagger step entirely on the simulated GPU (inputs, builders, losses, an update)
    agrees with the same step on the CPU."""
    def step(dev):
        dy.renew_cg()
        config.reseed(5)                           # the builder's initial values
        rng = np.random.default_rng(5)
        m = dy.ParameterCollection()
        E = m.add_lookup_parameters((10, 4), init=dy.NumpyInitializer(rng.normal(size=(10, 4))), device=dev)
        W = m.add_parameters((3, 6), init=dy.NumpyInitializer(rng.normal(size=(3, 6))), device=dev)
        lstm = dy.VanillaLSTMBuilder(1, 4, 6, m)
        for p in m.parameters_list():
            if p.device() != dev:                  # builders put theirs on the default device
                return None
        xs = [dy.lookup(E, i) for i in (1, 4, 7)]
        outs = lstm.initial_state().transduce(xs)
        loss = dy.esum([dy.pickneglogsoftmax(W * h, k) for h, k in zip(outs, (0, 2, 1))])
        v = loss.value()
        loss.backward()
        dy.AdamTrainer(m).update()
        return v, E.as_array(), W.as_array()
    saved = config.rng()
    cpu = step("CPU")
    device.configure(config.state)
    device.simulate_gpu(7, default=True)        # builders put their parameters on the default device
    dy.renew_cg()
    gpu = step(SIM)
    config._rng = saved
    assert gpu is not None
    np.testing.assert_allclose(gpu[0], cpu[0], rtol=1e-5)
    for a, b in zip(cpu[1:], gpu[1:]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_autobatching_steps_aside_for_graphs_across_devices(sim_gpu):
    """A graph with nodes on two devices takes the plain loops with autobatching on (same values,
    no crash); a graph on one device, a GPU included, is autobatched (next test)."""
    from dynet.core import execution
    m = dy.ParameterCollection()
    W = m.add_parameters((3, 2), init=dy.NumpyInitializer(np.arange(6.0).reshape(3, 2)), device=SIM)
    try:
        execution.configure(1, 0)
        dy.renew_cg()
        xs = [dy.inputVector([1.0, float(k)], device=SIM) for k in range(4)]
        hs = [dy.to_device(dy.parameter(W) * x, "CPU") for x in xs]
        loss = dy.esum([dy.squared_norm(h) for h in hs])
        want = sum(float(np.sum((np.arange(6.0).reshape(3, 2) @ [1.0, k]) ** 2)) for k in range(4))
        assert abs(loss.value() - want) < 1e-3 * want
        loss.backward()
        assert W.grad_as_array().any()
    finally:
        execution.configure(0, 0)
        dy.renew_cg()


def test_autobatching_on_a_gpu_graph(sim_gpu):
    """A graph wholly on a (simulated) GPU is autobatched through the generic implementation: its
    groups' values are placed side by side in the GPU's pool, and the values and gradients equal
    the CPU's without autobatching."""
    from dynet.core import execution

    def run(dev, autobatch):
        execution.configure(autobatch, 1)
        execution.reset()
        m = dy.ParameterCollection()
        W = m.add_parameters((3, 2), init=dy.NumpyInitializer(np.arange(6.0).reshape(3, 2)), device=dev)
        b = m.add_parameters(3, init=dy.NumpyInitializer(np.array([0.5, -1.0, 0.25])), device=dev)
        dy.renew_cg()
        xs = [dy.inputVector([1.0, 0.1 * k], device=dev) for k in range(5)]
        hs = [dy.logistic(dy.affine_transform([b, W, x])) for x in xs]
        loss = dy.esum([dy.pickneglogsoftmax(h, k % 3) for k, h in enumerate(hs)])
        value = loss.value()
        loss.backward()
        return value, W.grad_as_array().copy(), b.grad_as_array().copy(), dy.profiling_stats()

    try:
        v0, w0, b0, _ = run("CPU", 0)
        v1, w1, b1, stats = run(SIM, 1)
    finally:
        execution.configure(0, 0)
        dy.renew_cg()
    assert v1 == pytest.approx(v0, rel=1e-5)
    np.testing.assert_allclose(w1, w0, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b1, b0, rtol=1e-5, atol=1e-7)
    assert stats["affine_transform"]["batches"] == 1 and stats["logistic"]["batches"] == 1
