"""The frozen MusicGen backbone: the only module that knows transformers' MusicGen internals.

In: a mono MusicGen checkpoint (`MusicgenForConditionalGeneration`, a hub id or a local folder, loaded
through `model.weights`). Out: `MusicgenBackbone`, an `nn.Module` holding the model with every
parameter frozen, and what the conditioning needs from it:
- the T5 text encoder (`text_encoder`, which takes `inputs_embeds` `[B, N, text_hidden_size]`) and
  the projector P (`projector`, MusicGen's `enc_to_dec_proj`: T5 width -> decoder width; `None` when
  both widths agree and MusicGen projects nothing; frozen here like everything else, the semantic
  path unfreezes it, as the paper trains P);
- the decoder layers (`decoder_layers`, `num_layers` of them, `hidden_size` wide);
- `install_layer_pre_hook`: a forward pre-hook on one decoder layer that may rewrite the hidden state
  `[B, L, hidden_size]` entering it, and is told the absolute decoder position of its first row:
  the length of that layer's own self-attention KV cache, read before the layer runs (a pre-hook sees
  no position ids). 0 in a teacher-forced pass, the number of tokens already decoded in cached
  incremental generation;
- `logits`: one teacher-forced pass; `generate`: MusicGen's own `generate`, optionally continuing an
  audio prompt (codes as the decoder prefix), returning the audio, the codes, the decoder inputs it fed
  (for an exact teacher-forced replay) and the raw logits of every step; `decode`: codes -> waveform.

MusicGen facts handled here: decoder position 0 holds the start token; the codebook delay pattern
means position p predicts codebook k of frame p - k. Classifier-free guidance (`guidance_scale > 1`)
doubles the batch inside `generate()`: rows `[0, B)` carry the condition, rows `[B, 2B)` the null
condition (T5 states and attention mask zeroed by MusicGen).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle
from transformers import MusicgenForConditionalGeneration
from transformers.generation import StoppingCriteria, StoppingCriteriaList

from model.weights import load_model

LayerPreHook = Callable[[torch.Tensor, int], torch.Tensor]
"""`(hidden [B, L, H], first_position) -> new hidden [B, L, H]` for one decoder layer."""


@dataclass(frozen=True)
class GeneratedMusic:
    """What `MusicgenBackbone.generate` returns.

    audio: `[B, channels, samples]` at the codec's rate.
    codes: `[B, K, T]`, the frames `audio` was decoded from (a prompt's frames first), undelayed.
    decoder_input_ids: `[B * K, L]`, the delayed ids fed to the decoder, position 0 the start token
        (for the conditional rows only; `L` = prompt frames + number of steps).
    step_logits: `[B' * K, L, V]` raw logits of every step, before guidance (B' = 2B with guidance:
        conditional rows first, then the unconditional rows).
    """

    audio: torch.Tensor
    codes: torch.Tensor
    decoder_input_ids: torch.Tensor
    step_logits: torch.Tensor


class MusicgenBackbone(nn.Module):
    """A frozen mono `MusicgenForConditionalGeneration` and the pieces the conditioning reads."""

    def __init__(self, model: MusicgenForConditionalGeneration):
        super().__init__()
        if model.config.decoder.audio_channels != 1:
            raise ValueError("only mono MusicGen checkpoints are supported (the cached codes are mono)")
        self.model = model
        self.model.requires_grad_(False)

    @property
    def text_encoder(self) -> nn.Module:
        """The T5 encoder; takes `inputs_embeds` `[B, N, text_hidden_size]` and `attention_mask` `[B, N]`."""
        return self.model.text_encoder

    @property
    def text_hidden_size(self) -> int:
        """Width of T5's token embeddings (768 for T5-base)."""
        return int(self.model.config.text_encoder.d_model)

    @property
    def projector(self) -> nn.Linear | None:
        """P: T5 width -> decoder width, applied by MusicGen to the T5 output; None when MusicGen has none."""
        return getattr(self.model, "enc_to_dec_proj", None)

    @property
    def decoder_layers(self) -> nn.ModuleList:
        return self.model.decoder.model.decoder.layers

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.decoder.hidden_size)

    @property
    def num_layers(self) -> int:
        return len(self.decoder_layers)

    @property
    def num_codebooks(self) -> int:
        return int(self.model.config.decoder.num_codebooks)

    @property
    def frame_rate_hz(self) -> float:
        """Music frames (decoder steps) per second: EnCodec's frame rate (50 Hz for MusicGen)."""
        return float(self.model.config.audio_encoder.frame_rate)

    @property
    def sampling_rate_hz(self) -> int:
        """Samples per second of the waveforms EnCodec decodes (32 kHz for MusicGen)."""
        return int(self.model.config.audio_encoder.sampling_rate)

    @property
    def pad_token_id(self) -> int:
        """The id the delay pattern pads with; labels equal to it carry no loss."""
        return int(self.model.config.decoder.pad_token_id)

    def install_layer_pre_hook(self, layer_index: int, hook: LayerPreHook) -> RemovableHandle:
        """Run `hook` on the hidden state entering decoder layer `layer_index`; remove with `.remove()`."""
        if not 0 <= layer_index < self.num_layers:
            raise ValueError(f"layer_index {layer_index} is outside the decoder's {self.num_layers} layers")

        def pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            cache = kwargs.get("past_key_values")
            first_position = 0 if cache is None else int(cache.get_seq_length(layer_index))
            if args:
                return (hook(args[0], first_position), *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": hook(kwargs["hidden_states"], first_position)}

        return self.decoder_layers[layer_index].register_forward_pre_hook(pre_hook, with_kwargs=True)

    def logits(
        self,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One teacher-forced pass.

        text_embeds `[B, N, text_hidden_size]` and text_mask `[B, N]` go through T5 (as `inputs_embeds`)
        and P. The decoder reads either decoder_input_ids `[B * K, L]` (delayed ids, position 0 the start
        token) or, when only labels are given, the labels `[B, L, K]` (delayed codes, the pad id where
        nothing is to be predicted) shifted right behind the start token (shifted here: transformers 5.23
        reads a `decoder_start_token_id` that MusicGen's decoder config need not have). Returns logits
        `[B * K, L, V]` and, with labels, MusicGen's mean per-codebook cross-entropy (the pad id carries
        no loss).
        """
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("give decoder_input_ids or labels")
            decoder_input_ids = self._shift_right(labels)
        output = self.model(
            inputs_embeds=text_embeds,
            attention_mask=text_mask,
            decoder_input_ids=decoder_input_ids,
            labels=labels,
            use_cache=False,
        )
        return output.logits, output.loss

    @property
    def start_token_id(self) -> int:
        """The id at decoder position 0 (MusicGen's generation config; its bos id when that has none)."""
        start = self.model.generation_config.decoder_start_token_id
        return int(self.model.config.decoder.bos_token_id if start is None else start)

    def _shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """labels `[B, L, K]` -> decoder inputs `[B * K, L]`: the start token, then labels[:, :-1]."""
        shifted = torch.full_like(labels, self.start_token_id)
        shifted[:, 1:] = labels[:, :-1]
        return shifted.transpose(1, 2).reshape(-1, labels.shape[1])

    @torch.no_grad()
    def generate(
        self,
        text_embeds: torch.Tensor,
        text_mask: torch.Tensor,
        num_steps: int,
        guidance_scale: float | None = None,
        do_sample: bool = True,
        prompt_codes: torch.Tensor | None = None,
        **generation_kwargs,
    ) -> GeneratedMusic:
        """MusicGen's cached incremental generation of `num_steps` decoder steps, conditioned on
        text_embeds `[B, N, text_hidden_size]` / text_mask `[B, N]` through T5 and P, continuing
        prompt_codes `[B, K, P]` (undelayed frames; MusicGen feeds them as the decoder prefix, positions
        1..P, in one pass) when given. The decoder then covers positions [0, P + num_steps) and the music
        has P + num_steps + 1 - K frames, the prompt's first. `guidance_scale` None or 1 means no guidance
        (not the checkpoint's default); above 1, MusicGen itself adds the null condition. Other keywords
        (`top_k`, `temperature`, ...) go to transformers' `generate`."""
        batch = text_embeds.shape[0]
        prompt = text_embeds.new_zeros((batch, self.num_codebooks, 0), dtype=torch.long)
        if prompt_codes is not None:
            prompt = prompt_codes.to(device=text_embeds.device, dtype=torch.long)
        start = torch.full((batch, self.num_codebooks, 1), self.start_token_id, device=text_embeds.device)
        prefix = torch.cat([start, prompt], dim=2).reshape(batch * self.num_codebooks, -1)  # [B * K, P + 1]
        recorder = _SequenceRecorder()
        output = self.model.generate(
            inputs_embeds=text_embeds,
            attention_mask=text_mask,
            decoder_input_ids=prefix,
            max_new_tokens=num_steps,
            guidance_scale=guidance_scale,
            do_sample=do_sample,
            stopping_criteria=StoppingCriteriaList([recorder]),
            return_dict_in_generate=True,
            output_logits=True,
            **generation_kwargs,
        )
        _, delay_mask = self.model.decoder.build_delay_pattern_mask(
            prefix, pad_token_id=self.start_token_id, max_length=recorder.input_ids.shape[1]
        )
        delayed = self.model.decoder.apply_delay_pattern_mask(recorder.input_ids, delay_mask)  # [B * K, L + 1]
        return GeneratedMusic(
            audio=output.sequences,
            codes=self._undelay(delayed.reshape(batch, self.num_codebooks, -1)),
            decoder_input_ids=delayed[:, :-1],
            step_logits=torch.stack(output.logits, dim=1),
        )

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `[B, K, T]` -> waveforms `[B, samples]` at `sampling_rate_hz` (EnCodec, T x hop samples)."""
        audio = self.model.audio_encoder.decode(codes[None].long(), audio_scales=[None]).audio_values
        return audio[:, 0]

    def _undelay(self, delayed: torch.Tensor) -> torch.Tensor:
        """`[B, K, L + 1]` delayed ids, the start token first -> frames `[B, K, L + 1 - K]`."""
        num_frames = delayed.shape[2] - self.num_codebooks
        return torch.stack([delayed[:, k, k + 1 : k + 1 + num_frames] for k in range(self.num_codebooks)], dim=1)


class _SequenceRecorder(StoppingCriteria):
    """Keeps the ids `generate()` has produced so far, after each step (it never stops generation):
    the start token and the prompt, then the sampled ids, not yet delay-masked; the conditional rows
    only. transformers 5.23's MusicGen `generate` does not pass a streamer on to its sampling loop."""

    def __init__(self) -> None:
        self.input_ids = torch.empty(0, 0, dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        self.input_ids = input_ids
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def load_backbone(model_id: str, model_dir: Path | None = None, device: str | None = None) -> MusicgenBackbone:
    """Load a mono MusicGen checkpoint (hub id or local folder) and freeze it; raises
    `WeightsNotFoundError` when it cannot be found or lacks weights."""
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    musicgen = load_model(MusicgenForConditionalGeneration, model_id, model_dir)
    return MusicgenBackbone(musicgen).to(torch_device)
