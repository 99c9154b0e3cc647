"""PANNs Cnn14 (Kong et al., 2020), the audio tagger whose features FD and KL read, in plain torch.

In: a checkpoint file in the published format (`Cnn14_mAP=0.431.pth` from
https://zenodo.org/record/3987831: a dict whose "model" entry is the state dict) and mono audio at
`PANNS_SAMPLE_RATE_HZ` (32 kHz: the checkpoint's rate; MusicGen generates at 32 kHz too).
Out: `PannsOutputs` per clip: the 2048-wide embedding (`fc1` after ReLU, what FD reads) and the
527 AudioSet class logits (`fc_audioset` before the sigmoid, what KL reads).

The module names and parameter keys are those of the published code (`spectrogram_extractor.stft.
conv_real.weight`, `logmel_extractor.melW`, `bn0`, `conv_block1..6`, `fc1`, `fc_audioset`), so the
real checkpoint loads with `load_state_dict(strict=True)`. The STFT is a pair of 1-d convolutions
(torchlibrosa's: Hann window 1024, hop 320, reflect-padded centre frames), the log-mel filter bank
64 bands, 50 Hz to 14 kHz (librosa's Slaney mel). Widths and class count are read from the state
dict's shapes, so a small random-weight variant in the same format (`save_cnn14`) stands in for
tests. A whole clip is one input: Cnn14 pools over time (max + mean), so any length works.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dvmset.model_registry import PANNS_URL
from model.errors import WeightsNotFoundError

PANNS_SAMPLE_RATE_HZ = 32_000
WINDOW_SAMPLES = 1024
HOP_SAMPLES = 320
MEL_BANDS = 64
MEL_FMIN_HZ, MEL_FMAX_HZ = 50.0, 14_000.0
AUDIOSET_CLASSES = 527
FULL_WIDTHS = (64, 128, 256, 512, 1024, 2048)
DEFAULT_CHECKPOINT = "Cnn14_mAP=0.431.pth"
_AMIN = 1e-10


@dataclass(frozen=True)
class PannsOutputs:
    """Per clip: `embeddings` [N, 2048] (fc1 after ReLU) and `logits` [N, 527] (before the sigmoid)."""

    embeddings: np.ndarray
    logits: np.ndarray


class _Stft(nn.Module):
    """Real and imaginary STFT parts as 1-d convolutions with Hann-windowed DFT kernels."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        bins = n_fft // 2 + 1
        window = librosa.filters.get_window("hann", n_fft, fftbins=True)
        dft = np.exp(-2j * np.pi * np.outer(np.arange(n_fft), np.arange(bins)) / n_fft) * window[:, None]
        self.n_fft = n_fft
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_real.weight.data = torch.tensor(dft.real.T[:, None, :], dtype=torch.float32)
        self.conv_imag.weight.data = torch.tensor(dft.imag.T[:, None, :], dtype=torch.float32)
        self.requires_grad_(False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, S] -> power spectrogram [B, 1, frames, bins]."""
        padded = F.pad(audio[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        power = self.conv_real(padded) ** 2 + self.conv_imag(padded) ** 2
        return power.transpose(1, 2)[:, None]


class _Spectrogram(nn.Module):
    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.stft = _Stft(n_fft, hop)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.stft(audio)


class _LogMel(nn.Module):
    def __init__(self, sample_rate_hz: int, n_fft: int, mel_bands: int):
        super().__init__()
        mel = librosa.filters.mel(sr=sample_rate_hz, n_fft=n_fft, n_mels=mel_bands, fmin=MEL_FMIN_HZ, fmax=MEL_FMAX_HZ)
        self.melW = nn.Parameter(torch.tensor(mel.T, dtype=torch.float32), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        """[B, 1, frames, bins] -> log-mel power in dB [B, 1, frames, bands]."""
        return 10.0 * torch.log10(torch.clamp(power @ self.melW, min=_AMIN))


class _ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
        return F.avg_pool2d(x, kernel_size=pool)


class Cnn14(nn.Module):
    """Cnn14 at inference (no SpecAugment, no dropout); `widths` are the six conv blocks' channels."""

    def __init__(self, widths: tuple[int, ...] = FULL_WIDTHS, classes: int = AUDIOSET_CLASSES):
        super().__init__()
        self.spectrogram_extractor = _Spectrogram(WINDOW_SAMPLES, HOP_SAMPLES)
        self.logmel_extractor = _LogMel(PANNS_SAMPLE_RATE_HZ, WINDOW_SAMPLES, MEL_BANDS)
        self.bn0 = nn.BatchNorm2d(MEL_BANDS)
        channels = (1, *widths)
        for index in range(6):
            setattr(self, f"conv_block{index + 1}", _ConvBlock(channels[index], channels[index + 1]))
        self.fc1 = nn.Linear(widths[-1], widths[-1])
        self.fc_audioset = nn.Linear(widths[-1], classes)

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S] at 32 kHz -> (embedding [B, W], class logits [B, classes])."""
        x = self.logmel_extractor(self.spectrogram_extractor(audio))
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for index in range(6):
            x = getattr(self, f"conv_block{index + 1}")(x, (2, 2) if index < 5 else (1, 1))
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        embedding = F.relu(self.fc1(x))
        return embedding, self.fc_audioset(embedding)


def save_cnn14(model: Cnn14, path: Path) -> Path:
    """Write `model` in the published checkpoint format ({"model": state_dict})."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, path)
    return path


def resolve_checkpoint(checkpoint: str, model_dir: Path | None = None) -> Path:
    """The checkpoint file: `checkpoint` itself when it is a file, else `<model_dir>/panns/<checkpoint>`,
    else `~/panns_data/<checkpoint>` (panns_inference's folder); WeightsNotFoundError naming them all."""
    candidates = [Path(checkpoint).expanduser()]
    if model_dir is not None:
        candidates.append(Path(model_dir) / "panns" / Path(checkpoint).name)
    candidates.append(Path("~/panns_data").expanduser() / Path(checkpoint).name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = "; ".join(str(candidate.absolute()) for candidate in candidates)
    raise WeightsNotFoundError(
        f"PANNs Cnn14 checkpoint {checkpoint!r} not found. Looked in: {looked}. To provide it, download "
        f"{PANNS_URL} on a machine that is online and put it in <model folder>/panns/ (DVMSET_MODEL_DIR "
        "or model_dir in the config), or pass the file's path."
    )


def load_cnn14(checkpoint: str = DEFAULT_CHECKPOINT, model_dir: Path | None = None, device: str = "cpu") -> Cnn14:
    """Cnn14 with the weights of `checkpoint` (see `resolve_checkpoint`), in eval mode on `device`."""
    path = resolve_checkpoint(checkpoint, model_dir)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
        widths = tuple(int(state[f"conv_block{index + 1}.conv1.weight"].shape[0]) for index in range(6))
        model = Cnn14(widths, int(state["fc_audioset.weight"].shape[0]))
        model.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as error:
        message = f"{path} is not a PANNs Cnn14 checkpoint ({type(error).__name__}: {error})"
        raise WeightsNotFoundError(message) from error
    return model.eval().to(device)


@torch.inference_mode()
def panns_outputs(model: Cnn14, clips: list[np.ndarray]) -> PannsOutputs:
    """Embeddings and class logits of mono clips `[S]` at 32 kHz, one clip at a time (lengths differ)."""
    device = next(model.parameters()).device
    embeddings, logits = [], []
    for clip in clips:
        embedding, clip_logits = model(torch.as_tensor(clip, dtype=torch.float32, device=device)[None])
        embeddings.append(embedding[0].cpu().numpy())
        logits.append(clip_logits[0].cpu().numpy())
    return PannsOutputs(np.stack(embeddings).astype(np.float64), np.stack(logits).astype(np.float64))
