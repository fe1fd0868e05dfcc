import numpy as np

from featlib.brightness import BrightnessConfig, fit_brightness, luminance, plot_brightness, predict_brightness, psnr


def test_psnr_and_luminance():
    a = np.zeros((4, 4), np.float32)
    assert psnr(a, a) == float("inf")
    assert abs(psnr(a + 0.1, a) - 20.0) < 1e-4
    img = np.ones((2, 2, 3), np.float32)
    assert np.allclose(luminance(img), 1.0, atol=1e-3)


def test_fit_reduces_loss_and_reports_psnr():
    cfg = BrightnessConfig(steps=40, batch_size=4, crop=64, max_side=96, lr=3e-3, eval_every=20)
    hist = fit_brightness(cfg, progress=False)
    assert len(hist.loss) == 40 and np.isfinite(hist.loss).all()
    # early loss (untrained sigmoid ~0.5 vs luminance) is clearly above the late loss
    assert np.mean(hist.loss[-5:]) < 0.5 * np.mean(hist.loss[:5])
    assert hist.eval_steps == [20, 40] and len(hist.psnr_test) == 2
    assert hist.psnr_train[-1] > hist.psnr_train[0] - 1.0
    pred = predict_brightness(hist.model, np.random.rand(40, 50, 3).astype(np.float32))
    assert pred.shape == (40, 50) and pred.min() >= 0 and pred.max() <= 1


def test_smoke_config_and_figure():
    hist = fit_brightness(BrightnessConfig.smoke(), progress=False)
    fig = plot_brightness(hist)
    assert len(fig.axes) == 2 + 4 * len(hist.config.test_photos)
