"""Tiny random LTX-Video and Wan pipelines, built in code, for tests and benches.

Nothing touches the network: the tokenizer is ``T5Tokenizer()`` with no vocabulary file (its
built-in specials only, so every word is the unknown token: prompts barely matter, which
is fine for random weights), the text encoder a 2-layer ``T5EncoderModel`` from a config, and
every model is made from a small config with a fixed seed, then saved with
``save_pretrained`` so it loads like any local diffusers folder through the app's loader.
Sizes follow the scale of diffusers' own pipeline tests; the VAEs keep the real models'
compression (LTX: 8x in time, 32x with the patch in space; Wan: 4x in time, 8x x patch 2).
"""

from __future__ import annotations

from pathlib import Path

TEXT_WIDTH = 32


def _text_parts(umt5: bool = False):
    """The tokenizer and a 2-layer text encoder (UMT5 for Wan, whose pipelines expect it; T5 for LTX)."""
    from transformers import T5Config, T5EncoderModel, T5Tokenizer, UMT5Config, UMT5EncoderModel

    tokenizer = T5Tokenizer()
    config_class, model_class = (UMT5Config, UMT5EncoderModel) if umt5 else (T5Config, T5EncoderModel)
    config = config_class(vocab_size=len(tokenizer), d_model=TEXT_WIDTH, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      decoder_start_token_id=0, pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.eos_token_id)
    return tokenizer, model_class(config)


def build_tiny_ltx_pipeline(folder: Path) -> Path:
    """A tiny random ``LTXConditionPipeline`` saved (safetensors) into ``folder``; returns the folder.

    Frame rules as the real model's: 8k+1 frames, sides a multiple of 32 (8 latent channels
    here instead of 128, one transformer layer).
    """
    import torch
    from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline,
                           LTXVideoTransformer3DModel)

    torch.manual_seed(0)
    tokenizer, text_encoder = _text_parts()
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4, attention_head_dim=8,
        cross_attention_dim=32, num_layers=1, caption_channels=TEXT_WIDTH,
    )
    # Three of the four blocks halve space and time (8x each); the VAE's own patch of 4 makes space 32x,
    # so frames and sides follow the real LTX-Video's rules (8k+1, multiples of 32).
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False,
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
    )
    pipe = LTXConditionPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                                tokenizer=tokenizer, transformer=transformer)
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def _wan_parts(in_channels: int):
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel

    torch.manual_seed(0)
    tokenizer, text_encoder = _text_parts(umt5=True)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=in_channels,
        out_channels=16, text_dim=TEXT_WIDTH, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )
    return dict(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))


def build_tiny_wan_pipeline(folder: Path) -> Path:
    """A tiny random ``WanImageToVideoPipeline`` (Wan 2.2 A14B style: no image encoder, first-last-frame)."""
    from diffusers import WanImageToVideoPipeline

    # 16 noise channels + 16 condition channels + 4 mask channels.
    pipe = WanImageToVideoPipeline(**_wan_parts(in_channels=36))
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def build_tiny_wan_ti2v_pipeline(folder: Path) -> Path:
    """A tiny random Wan 2.2 TI2V-style checkpoint: a ``WanPipeline`` with ``expand_timesteps``, like
    TI2V-5B's, which animates a first frame and ignores a last one."""
    from diffusers import WanPipeline

    pipe = WanPipeline(**_wan_parts(in_channels=16), expand_timesteps=True)
    pipe.save_pretrained(folder, safe_serialization=True)
    return Path(folder)


def build_tiny_wan21_pipeline(folder: Path, first_last_frame: bool = False) -> Path:
    """A tiny random Wan 2.1 image-to-video checkpoint: CLIP image embeddings of the start picture (and, for
    ``first_last_frame``, the FLF2V kind, position embeddings for a second, last picture)."""
    from diffusers import WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    from diffusers import WanTransformer3DModel

    parts = _wan_parts(in_channels=36)
    config = parts["transformer"].config

    # CLIP's 32x32 picture at patch 1 is 1024 tokens (+1 class token) per picture, two pictures for FLF2V.
    parts["transformer"] = WanTransformer3DModel(**{**{k: v for k, v in config.items() if not k.startswith("_")},
                                                    "image_dim": 4,
                                                    "pos_embed_seq_len": 2 * 1025 if first_last_frame else None})
    parts["image_encoder"] = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=4, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        intermediate_size=16, patch_size=1))
    parts["image_processor"] = CLIPImageProcessor(crop_size=32, size=32)
    WanImageToVideoPipeline(**parts).save_pretrained(folder, safe_serialization=True)
    return Path(folder)
