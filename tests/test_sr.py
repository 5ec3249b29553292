"""SR front-ends of ``lr0fm benchmark --sr``: spandrel files, the paper's table, diffusers pipelines, the chain.

Everything is offline: random-weight SR networks built with spandrel's architecture classes, a tiny random
``StableDiffusionUpscalePipeline`` saved to disk, and the toy world's tasks (a few images per class).
"""

import csv
import json
import os
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from safetensors.torch import save_file

import lr0fm.toy.datasets as toy_datasets
from lr0fm.benchmark.outputs import RESULT_COLUMNS
from lr0fm.cli import main as cli_main
from lr0fm.protocols.chains import FloatViews
from lr0fm.sr.chain import SR_CHAIN, SRInputs, SRViews, sr_protocol_name
from lr0fm.sr.upscalers import SRSpecError, load_upscaler, parse_sr_spec, sr_table

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SIZE = 64  # toyclip's input side
MEAN, STD = (0.5, 0.4, 0.3), (0.3, 0.2, 0.25)


def compact(path, seed=0, features=8):
    """A random Real-ESRGAN Compact x4, saved as safetensors."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=features, num_conv=2, upscale=4)
    save_file(model.state_dict(), str(path))
    return path


def swinir(path, seed=0):
    """A random SwinIR x4 (one tiny stage), saved as a .pth state dict."""
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(seed)
    model = SwinIR(img_size=16, window_size=4, embed_dim=12, depths=[1], num_heads=[2], upscale=4, mlp_ratio=2,
                   upsampler="pixelshuffledirect")  # fmt: skip
    torch.save(model.state_dict(), path)
    return path


def rrdb(path, seed=0):
    """A random ESRGAN/BSRGAN-style RRDBNet x4 with one block, saved as .pth."""
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    torch.save(ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict(), path)
    return path


@pytest.fixture
def few_toy_images(monkeypatch):
    """The toy tasks with 6 images per class (the benchmark builds them through the plug-in)."""
    monkeypatch.setattr(toy_datasets, "build_toy_dataset", partial(toy_datasets.build_toy_dataset, num_per_class=6))


def bench(output, sr, *extra, datasets=("toy-size", "toy-texture"), resolutions=("8", "16", "hr")):
    return [
        "benchmark", "--model", "toyclip", "--dataset", *datasets, "--resolutions", *resolutions,
        "--output", str(output), "--accelerator", "cpu", "--workers", "0", "--batch_size", "16",
        *(["--sr", str(sr)] if sr else []), *extra,
    ]  # fmt: skip


def rows(output):
    with (output / "results.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


# --- the chain -----------------------------------------------------------------------------------------------


def reference_chain(lr_uint8, model, size, passes=None):
    """The SR chain written out plainly: [0, 1] -> model passes -> uint8 levels -> Resize(S) + CenterCrop(S) -> norm."""
    x, done = lr_uint8.float() / 255, 0
    while True:
        x = model(x).clamp(0, 1)
        done += 1
        if (passes and done == passes) or (not passes and x.shape[-1] >= size):
            break
    x = (x * 255).round()
    h, w = x.shape[-2:]
    short = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    x = F.interpolate(x, size=short, mode="bicubic", antialias=True).clamp(0, 255).round()
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top : top + size, left : left + size] / 255
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1), done


@pytest.mark.parametrize("passes", [None, 1])
def test_sr_chain_equals_a_plain_reference_chain(tmp_path, passes):
    upscaler = load_upscaler(str(compact(tmp_path / "c.safetensors")))
    resolutions = [8, 16, "hr"]
    canvas = torch.randint(0, 256, (3, len(resolutions), 3, SIZE, SIZE), dtype=torch.uint8)
    views = SRViews(upscaler, resolutions, SIZE, FloatViews((MEAN, STD)), passes=passes)(canvas)
    assert views.shape == (3, 3, 3, SIZE, SIZE)
    for j, n in enumerate([8, 16]):
        expected, done = reference_chain(canvas[:, j, :, :n, :n], upscaler.descriptor.model, SIZE, passes)
        assert torch.allclose(views[:, j], expected, atol=1e-4)
        assert done == (passes or {8: 2, 16: 1}[n])  # x4: 8 -> 32 -> 128, 16 -> 64
    hr = (canvas[:, 2].float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert torch.allclose(views[:, 2], hr, atol=1e-6)  # hr: the native view, no SR


def test_worker_half_is_the_authors_lr_square_and_native_view():
    image = Image.fromarray(torch.randint(0, 256, (50, 70, 3), dtype=torch.uint8).numpy())
    transform = SR_CHAIN.transform([8, 16, "hr"], size=SIZE, mean=MEAN, std=STD, preprocess=None)
    out = SRInputs(transform.split_uint8()[0])(image)
    assert out.shape == (3, 3, SIZE, SIZE) and out.dtype == torch.uint8
    to_uint8 = T.PILToTensor()
    for j, n in enumerate([8, 16, SIZE]):  # the authors: Resize(n) bicubic + CenterCrop(n)
        square = T.Compose([T.Resize(n, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(n)])(image)
        assert torch.equal(out[j, :, :n, :n], to_uint8(square))
    assert not out[0, :, 8:, :].any()  # the rest of the canvas is empty


def test_lanczos_matches_pil_and_interpolations_scale(tmp_path):
    image = torch.randint(0, 256, (1, 3, 9, 12), dtype=torch.uint8)
    ours = load_upscaler("lanczos:3")(image.float() / 255)
    pil = Image.fromarray(image[0].permute(1, 2, 0).numpy()).resize((36, 27), Image.LANCZOS)
    theirs = torch.from_numpy(np.array(pil)).permute(2, 0, 1).float() / 255
    assert ours.shape == (1, 3, 27, 36)
    assert (ours[0].clamp(0, 1) * 255 - theirs * 255).abs().max() <= 1.0  # PIL rounds to uint8
    assert load_upscaler("bilinear")(torch.rand(2, 3, 5, 5)).shape == (2, 3, 20, 20)


# --- end to end ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [compact, swinir], ids=["compact", "swinir"])
def test_spandrel_file_end_to_end_on_toy_tasks(make, tmp_path, few_toy_images, capsys):
    weights = make(tmp_path / ("net.safetensors" if make is compact else "net.pth"))
    out = tmp_path / "out"
    assert cli_main(bench(out, weights)) == 0
    table = rows(out)
    assert len(table) == 6 and {r["protocol"] for r in table} == {"sr:net"}
    assert {r["chain"] for r in table} == {SR_CHAIN.name}
    assert set(RESULT_COLUMNS) >= {"sr", "sr_spec", "sr_key", "sr_params", "sr_passes", "sr_ms_per_image"}
    upscaler = load_upscaler(str(weights))
    for r in table:
        assert (r["sr"], r["sr_spec"], r["sr_key"]) == ("net", str(weights), upscaler.key)
        assert int(r["sr_params"]) == upscaler.params > 0 and r["sr_scale"] == "4"
        assert int(r["sr_passes"]) == {"8": 2, "16": 1, "hr": 0}[r["resolution"]]
        assert (float(r["sr_ms_per_image"]) > 0) if r["resolution"] != "hr" else r["sr_ms_per_image"] == ""
        assert int(r["num_samples"]) == 6 * {"toy-size": 3, "toy-texture": 4}[r["dataset"]]
    assert not [p for p in out.rglob("*") if ":" in p.name]  # no ':' in any file or folder name
    assert "| toyclip |" in capsys.readouterr().out  # the summary of the run's sr: rows


def test_sr_rows_stay_apart_from_plain_rows_and_resume_on_content(tmp_path, few_toy_images, capsys):
    out, weights = tmp_path / "out", compact(tmp_path / "up.safetensors")
    args = {"datasets": ("toy-size",), "resolutions": ("16", "hr")}
    assert cli_main(bench(out, None, **args)) == 0
    plain = {(r["resolution"], r["top1"]) for r in rows(out)}
    assert cli_main(bench(out, weights, "--sr_passes", "1", **args)) == 0
    table = rows(out)
    assert {r["protocol"] for r in table} == {"paper", "sr:up@1pass"}
    assert {(r["resolution"], r["top1"]) for r in table if r["protocol"] == "paper"} == plain  # untouched
    assert {r["sr_passes"] for r in table if r["protocol"] != "paper"} == {"1", "0"}
    capsys.readouterr()

    assert cli_main(bench(out, weights, "--sr_passes", "1", **args)) == 0  # same content: nothing to do
    assert "skip toyclip" in capsys.readouterr().out
    compact(weights, seed=1)  # new weights under the same name: its cells are measured again
    assert cli_main(bench(out, weights, "--sr_passes", "1", **args)) == 0
    assert "toyclip on toy-size" in capsys.readouterr().out
    assert len(rows(out)) == 4
    summary = (out / "summary.md").read_text()
    assert "| toyclip |" in summary


def tiny_upscale_pipeline(directory):
    """A randomly initialised StableDiffusionUpscalePipeline of ~0.1 M parameters, saved with save_pretrained."""
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        DDPMScheduler,
        StableDiffusionUpscalePipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from lr0fm.synth.tiny import build_tiny_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tiny_tokenizer()
    tokenizer.model_max_length = 16
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=7, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4, num_class_embeds=400,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=1,
        scaling_factor=0.08333,
    )  # fmt: skip
    text = CLIPTextConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=1,
                          vocab_size=len(tokenizer), max_position_embeddings=16, pad_token_id=0, bos_token_id=1,
                          eos_token_id=1, projection_dim=16)  # fmt: skip
    StableDiffusionUpscalePipeline(
        vae=vae, text_encoder=CLIPTextModel(text), tokenizer=tokenizer, unet=unet, low_res_scheduler=DDPMScheduler(),
        scheduler=DDIMScheduler(prediction_type="v_prediction"), max_noise_level=350,
    ).save_pretrained(directory)  # fmt: skip
    return directory


def test_diffusers_upscaler_pipeline_from_a_folder(tmp_path, few_toy_images):
    folder = tiny_upscale_pipeline(tmp_path / "tiny-upscaler")
    out = tmp_path / "out"
    kwargs = json.dumps({"num_inference_steps": 2, "noise_level": 10})
    args = bench(out, f"diffusers:{folder}", "--sr_kwargs", kwargs, datasets=("toy-size",), resolutions=("16", "hr"))
    assert cli_main(args) == 0
    table = {r["resolution"]: r for r in rows(out)}
    assert table["16"]["protocol"] == "sr:diffusers-tiny-upscaler"
    assert (table["16"]["sr_scale"], table["16"]["sr_passes"]) == ("4", "1")  # 16 -> 64: the scale it measured
    assert int(table["16"]["sr_params"]) > 10_000 and float(table["16"]["sr_ms_per_image"]) > 0
    assert int(table["16"]["num_samples"]) == 18


# --- specs and errors ----------------------------------------------------------------------------------------


def test_specs_name_their_rows():
    assert parse_sr_spec("bicubic").name == "bicubic-x4" and parse_sr_spec("lanczos:2").factor == 2
    assert parse_sr_spec("bsrgan").kind == "table" and parse_sr_spec("bsrgan").name == "BSRGAN"
    assert parse_sr_spec("/w/RealESRGAN_x4plus.pth").name == "RealESRGAN_x4plus"
    assert parse_sr_spec("diffusers:stabilityai/stable-diffusion-x4-upscaler").name == (
        "diffusers-stable-diffusion-x4-upscaler"
    )
    assert sr_protocol_name("BSRGAN") == "sr:BSRGAN" and sr_protocol_name("BSRGAN", 1) == "sr:BSRGAN@1pass"


def test_table_names_resolve_to_their_files_or_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("LR0FM_WEIGHTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    table = sr_table()
    runnable = [n for n, e in table.items() if "no_loader" not in e]
    assert {"BSRGAN", "ESRGAN", "Real-ESRGAN", "SwinIR", "HAT"} <= set(runnable)
    assert {"AddSR", "Inf-DiT", "IDM"} <= set(table) - set(runnable)
    for name in runnable:
        with pytest.raises(FileNotFoundError) as err:
            load_upscaler(name)
        assert table[name]["file"] in str(err.value) and table[name]["url"] in str(err.value)
    rrdb(tmp_path / "BSRGAN.pth")  # the original file name, found in $LR0FM_WEIGHTS
    upscaler = load_upscaler("BSRGAN")
    assert (upscaler.name, upscaler.scale, upscaler.architecture) == ("BSRGAN", 4, "ESRGAN")
    assert table["Real-ESRGAN"]["file"] == table["ESRGAN"]["file"] == "RealESRGAN_x4plus.pth"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sr", "AddSR"], "no loader"),
        (["--sr", "missing_sr.pth"], "$LR0FM_WEIGHTS"),
        (["--sr", "BSRGN.pth"], "Did you mean 'BSRGAN'"),
        (["--sr", "bicubic:1"], "integer >= 2"),
        (["--sr_passes", "2"], "only apply with --sr"),
        (["--sr", "bicubic", "--sr_passes", "0"], "at least 1"),
        (["--sr", "bicubic", "--sr_kwargs", '{"num_inference_steps": 2}'], "diffusers:ID_OR_DIR pipelines only"),
        (["--sr", "NOT_A_MODEL.pth"], "spandrel does not recognise"),
        (["--sr", "NO_SUFFIX"], ".safetensors"),
        (["--sr", "diffusers:EMPTY"], "no model_index.json"),
    ],
)
def test_bad_sr_specs_fail_with_what_to_do(argv, message, tmp_path, monkeypatch, capsys, few_toy_images):
    monkeypatch.setenv("LR0FM_WEIGHTS", str(tmp_path))
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "NOT_A_MODEL.pth")
    (tmp_path / "NO_SUFFIX").write_bytes(b"weights")
    (tmp_path / "EMPTY").mkdir()
    argv = [a.replace("diffusers:EMPTY", f"diffusers:{tmp_path / 'EMPTY'}") for a in argv]
    assert cli_main(bench(tmp_path / "out", None, *argv, datasets=("toy-size",))) == 2
    assert message in capsys.readouterr().err


def test_an_sr_spec_error_is_an_sr_spec_error():
    with pytest.raises(SRSpecError):
        load_upscaler("Inf-DiT")


def test_sr_baselines_preset_is_the_papers_table_3_setting():
    from lr0fm.benchmark.cli import build_parser, make_config
    from lr0fm.catalog import DATASETS
    from lr0fm.models.registry import backbone_table
    from lr0fm.presets import resolve_config

    preset = ["--config", resolve_config("sr_baselines", "benchmark")]
    config, _ = make_config(build_parser().parse_args(preset))
    assert config.models == [backbone_table()["EVA-02-CLIP-B/16"]["spec"]]
    assert config.datasets == list(DATASETS) and config.resolutions == [16, 32, "hr"]
    assert (config.sr, config.sr_passes, config.run_protocol) == ("BSRGAN", 1, "sr:BSRGAN@1pass")
    baseline, _ = make_config(build_parser().parse_args([*preset, "--sr", "null", "--sr_passes", "null"]))
    assert baseline.run_protocol == "paper"


def test_views_on_device_make_the_same_chain_with_torch(tmp_path):
    from lr0fm.protocols.device import DecodeRGB
    from lr0fm.toy.world import render_split

    upscaler = load_upscaler(str(compact(tmp_path / "c.safetensors")))
    arrays, _ = render_split("eval", range(4))
    images = [Image.fromarray(a).resize((80, 64)) for a in arrays]  # not square: shorter side + centre crop
    transform = SR_CHAIN.transform([8, 16, "hr"], size=SIZE, mean=MEAN, std=STD, preprocess=None)
    uint8_half, float_views = transform.split_uint8()
    exact = SRViews(upscaler, [8, 16, "hr"], SIZE, float_views)(torch.stack([SRInputs(uint8_half)(i) for i in images]))
    device = SRViews(upscaler, [8, 16, "hr"], SIZE, float_views, on_device=True)([DecodeRGB()(i) for i in images])
    assert device.shape == exact.shape
    levels = (device - exact).abs() * torch.tensor(STD).view(3, 1, 1) * 255  # in uint8 levels
    assert levels[:, :2].mean() < 0.5 and levels.max() <= 4  # PIL's and torch's resamplers differ slightly
    assert levels[:, 2].max() < 1e-3  # hr: a crop of a 64 px high image, no resampling on either path
