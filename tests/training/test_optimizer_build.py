"""Optimizer builder: Adam from the spec, TAO's Adam update, cost scaling, mixed precision."""

import numpy as np
import pytest
from tiny_keras import tiny_data, tiny_dataset, tiny_model, weights_of

from tao_qat.common.errors import SpecError
from tao_qat.common.tensorflow_setup import keras, tf
from tao_qat.spec.proto import model_config_pb2, training_config_pb2
from tao_qat.training.optimizer import (
    AdamSettings,
    CostScaling,
    build_optimizer,
    current_learning_rate,
    inner_optimizer,
    mixed_precision,
    use_mixed_precision,
)
from tao_qat.training.schedules import SoftStartAnnealingSchedule


def training_config(enabled=False, exponent=20.0, increment=0.005, decrement=1.0):
    config = training_config_pb2.TrainingConfig()
    adam = config.optimizer.adam
    adam.epsilon, adam.beta1, adam.beta2 = 1e-8, 0.9, 0.999
    scaling = config.cost_scaling
    scaling.enabled, scaling.initial_exponent = enabled, exponent
    scaling.increment, scaling.decrement = increment, decrement
    return config


def test_adam_from_spec_uses_the_schedule_and_hyper_parameters():
    config = training_config()
    schedule = SoftStartAnnealingSchedule(5e-6, 5e-4, 0.1, 0.7, 100)
    optimizer = build_optimizer(config.optimizer, config.cost_scaling, schedule)
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer._learning_rate is schedule
    # proto fields are float32: 0.9 -> 0.8999999762
    assert optimizer.beta_1 == pytest.approx(0.9, rel=1e-6)
    assert optimizer.beta_2 == pytest.approx(0.999, rel=1e-6)
    assert optimizer.epsilon == pytest.approx(1e-8, rel=1e-6)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epsilon", 0.0, "training_config.optimizer.adam.epsilon: must be > 0"),
        ("beta1", 1.0, "training_config.optimizer.adam.beta1: must be in [0, 1)"),
        ("beta2", -0.1, "training_config.optimizer.adam.beta2: must be in [0, 1)"),
    ],
)
def test_adam_spec_errors(field, value, message):
    config = training_config()
    setattr(config.optimizer.adam, field, value)
    with pytest.raises(SpecError) as err:
        build_optimizer(config.optimizer, config.cost_scaling, 1e-3)
    assert str(err.value).startswith(message)


def test_missing_optimizer_is_a_spec_error():
    config = training_config_pb2.TrainingConfig()
    with pytest.raises(SpecError, match="training_config.optimizer: set one of adam"):
        build_optimizer(config.optimizer, None, 1e-3)


def test_adam_update_matches_tao_adam():
    # TAO's tf.train.AdamOptimizer: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    # lr_t = lr sqrt(1-b2^t)/(1-b1^t); w -= lr_t m / (sqrt(v) + eps).
    # w=1, lr=0.1, g = 2w (loss w^2):
    #   t=1: g=2, m=0.2, v=0.004, lr_t=0.1*sqrt(0.001)/0.1=0.0316228, step=lr_t*0.2/0.0632456=0.1
    #        -> w=0.9
    #   t=2: g=1.8, m=0.36, v=0.007236; lr_t=0.1*sqrt(0.001999)/0.19=0.0235317;
    #        step = 0.0235317*0.36/0.0850647 = 0.0995877 -> w=0.8004123
    # (float32 betas: 1 - 0.999f = 0.00099998713, hence a tolerance of 1e-5).
    optimizer = AdamSettings(epsilon=1e-8, beta1=0.9, beta2=0.999).build(0.1)
    w = tf.Variable(1.0)
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = w * w
        optimizer.apply_gradients([(tape.gradient(loss, w), w)])
    assert float(w.numpy()) == pytest.approx(0.8004123, abs=1e-5)


def test_cost_scaling_mapping():
    scaling = CostScaling.from_spec(training_config(True).cost_scaling)
    assert scaling.initial_scale == 2.0**20
    assert scaling.growth_steps == 200  # E += 0.005 per step doubles the scale every 200 steps
    assert CostScaling(True, 0, 0.0, 1.0).growth_steps == 2**31 - 1  # never grows
    with pytest.raises(SpecError, match="training_config.cost_scaling.decrement: must be >= 0"):
        CostScaling.from_spec(training_config(True, decrement=-1.0).cost_scaling)
    disabled = training_config(False)
    optimizer = build_optimizer(disabled.optimizer, disabled.cost_scaling, 1e-3)
    assert isinstance(optimizer, keras.optimizers.Adam)


def test_cost_scaling_grows_and_skips_overflowing_steps():
    # Scale 2**3, doubled every round(1/0.5) = 2 finite steps: after 4 finite steps 8*2*2 = 32.
    config = training_config(True, exponent=3.0, increment=0.5)
    model = tiny_model()
    model.compile(build_optimizer(config.optimizer, config.cost_scaling, 1e-3), loss="mse")
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
    model.fit(tiny_dataset(4), epochs=1, verbose=0)  # 4 steps
    assert float(model.optimizer.loss_scale) == 32.0
    assert int(model.optimizer.iterations.numpy()) == 4

    # Scale 2**126 and targets ~1e3 (loss ~3e5): the scaled loss overflows float32 -> the step
    # is skipped (weights kept), the scale halves and the iteration still counts (like TAO's
    # global step).
    config = training_config(True, exponent=126.0, increment=0.005)
    model = tiny_model()
    model.compile(build_optimizer(config.optimizer, config.cost_scaling, 1e-3), loss="mse")
    before = weights_of(model)
    x, y = tiny_data()
    model.fit(x, y * 1e3, batch_size=16, epochs=1, verbose=0)  # one step
    assert float(model.optimizer.loss_scale) == 2.0**125
    assert int(model.optimizer.iterations.numpy()) == 1
    for a, b in zip(before, weights_of(model), strict=True):
        np.testing.assert_array_equal(a, b)


def test_current_learning_rate_through_the_loss_scale_wrapper():
    config = training_config(True)
    schedule = SoftStartAnnealingSchedule(1e-6, 1e-2, 0.5, 1.0, total_steps=4)
    model = tiny_model()
    model.compile(build_optimizer(config.optimizer, config.cost_scaling, schedule), loss="mse")
    assert isinstance(inner_optimizer(model.optimizer), keras.optimizers.Adam)
    assert current_learning_rate(model.optimizer) == pytest.approx(1e-6, rel=1e-5)  # step 0
    model.fit(tiny_dataset(8), epochs=1, verbose=0)  # 2 steps: latest is step 1 -> t=0.5
    assert current_learning_rate(model.optimizer) == pytest.approx(1e-4, rel=1e-5)
    assert current_learning_rate(AdamSettings().build(0.25)) == 0.25


def test_mixed_precision_policy_is_set_and_restored():
    model_config = model_config_pb2.ModelConfig()
    assert not use_mixed_precision(model_config)
    model_config.training_precision.backend_floatx = model_config.TrainingPrecision.FLOAT16
    assert use_mixed_precision(model_config)
    model_config.training_precision.backend_floatx = model_config.TrainingPrecision.INVALID
    with pytest.raises(SpecError, match="backend_floatx: must be FLOAT32 or FLOAT16, got INVALID"):
        use_mixed_precision(model_config)

    assert keras.mixed_precision.global_policy().name == "float32"
    with mixed_precision(True):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
        assert layer.compute_dtype == "float16" and layer.kernel.dtype == tf.float32
    assert keras.mixed_precision.global_policy().name == "float32"
    with mixed_precision(False):
        assert keras.mixed_precision.global_policy().name == "float32"
