#!/usr/bin/env python3
"""Exports the reference networks to ONNX for the peer benchmark (scripts/bench-peers.js).

Loads the bench's random-weight model (diffusers folder layout, F16 safetensors) into the
reference modules in float32 -- diffusers' UNet2DConditionModel, AutoencoderKL and AutoencoderTiny
from a diffusers source tree (--diffusers-src), and for the text encoder a CLIP text transformer
written here (transformers cannot be installed on the development machines: it is neither a Debian
package nor small enough to mirror; the module below follows CLIPTextModel's structure and key
names, and the benchmark checks its output against onestep's) -- runs each once on seeded inputs,
and writes per stage:
  <out>/<stage>/model.onnx (+ external weight files), <out>/<stage>/io.safetensors (inputs and the
  PyTorch output), <out>/<stage>/meta.json (input and output names, shapes, dtypes).
Attention exports as matmul-softmax-matmul (torch 1.13 has no fused SDPA). Run with the system
python that has torch (Debian: python3-torch); diffusers' hub and safetensors imports are stubbed
(nothing here downloads or reads through them).
"""
import argparse
import importlib.machinery
import json
import math
import os
import struct
import sys
import types

import numpy as np
import torch


def stub_modules():
    """diffusers imports huggingface_hub and safetensors at import time; the export calls neither."""
    def make(name):
        m = types.ModuleType(name)

        def getattr_(attr):
            if attr.startswith('__'):
                raise AttributeError(attr)
            if attr.isupper():
                return r'^[0-9a-f]{40}$' if attr.startswith('REGEX') else os.devnull
            if attr[0].isupper():
                return type(attr, (Exception,), {})

            def stub(*a, **k):
                if len(a) == 1 and callable(a[0]) and not k:
                    return a[0]  # used as a decorator
                raise RuntimeError(f'{name}.{attr} is not available in the ONNX export')
            return stub
        m.__getattr__ = getattr_
        m.__path__ = []
        m.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        m.__version__ = '0.20.0'
        return m
    for name in ['huggingface_hub', 'huggingface_hub.constants', 'huggingface_hub.file_download', 'huggingface_hub.utils',
                 'safetensors', 'safetensors.torch']:
        if name not in sys.modules:
            sys.modules[name] = make(name)


DTYPES = {'F32': np.float32, 'F16': np.float16, 'BF16': None, 'I64': np.int64}


def read_safetensors(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        raw = data[a:b]
        if v['dtype'] == 'BF16':
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[v['dtype']])
        out[k] = torch.from_numpy(arr.reshape(v['shape']).astype(np.float32) if arr.dtype != np.int64 else arr.reshape(v['shape']).copy())
    return out


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for k, t in tensors.items():
        a = np.ascontiguousarray(t.detach().numpy())
        dt = {np.dtype(np.float32): 'F32', np.dtype(np.int64): 'I64'}[a.dtype]
        b = a.tobytes()
        header[k] = {'dtype': dt, 'shape': list(a.shape), 'data_offsets': [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- a CLIP text transformer with CLIPTextModel's structure and parameter names ---------------
class Attention(torch.nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = torch.nn.Linear(width, width)
        self.k_proj = torch.nn.Linear(width, width)
        self.v_proj = torch.nn.Linear(width, width)
        self.out_proj = torch.nn.Linear(width, width)

    def forward(self, x, mask):
        b, n, c = x.shape
        d = c // self.heads
        split = lambda t: t.reshape(b, n, self.heads, d).transpose(1, 2)
        q, k, v = split(self.q_proj(x) * (d ** -0.5)), split(self.k_proj(x)), split(self.v_proj(x))
        p = torch.softmax(q @ k.transpose(-1, -2) + mask, dim=-1)
        return self.out_proj((p @ v).transpose(1, 2).reshape(b, n, c))


class Layer(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        w = cfg['hidden_size']
        self.self_attn = Attention(w, cfg['num_attention_heads'])
        self.layer_norm1 = torch.nn.LayerNorm(w, eps=cfg['layer_norm_eps'])
        self.mlp = torch.nn.Module()
        self.mlp.fc1 = torch.nn.Linear(w, cfg['intermediate_size'])
        self.mlp.fc2 = torch.nn.Linear(cfg['intermediate_size'], w)
        self.layer_norm2 = torch.nn.LayerNorm(w, eps=cfg['layer_norm_eps'])
        act = cfg.get('hidden_act', 'quick_gelu')
        if act == 'gelu':
            self.act = lambda h: torch.nn.functional.gelu(h)
        elif act == 'quick_gelu':
            self.act = lambda h: h * torch.sigmoid(1.702 * h)
        else:
            raise ValueError(f'hidden_act {act!r} is not supported by the export')

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp.fc2(self.act(self.mlp.fc1(self.layer_norm2(x))))


class CLIPText(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        w = cfg['hidden_size']
        self.text_model = torch.nn.Module()
        tm = self.text_model
        tm.embeddings = torch.nn.Module()
        tm.embeddings.token_embedding = torch.nn.Embedding(cfg['vocab_size'], w)
        tm.embeddings.position_embedding = torch.nn.Embedding(cfg['max_position_embeddings'], w)
        tm.encoder = torch.nn.Module()
        tm.encoder.layers = torch.nn.ModuleList([Layer(cfg) for _ in range(cfg['num_hidden_layers'])])
        tm.final_layer_norm = torch.nn.LayerNorm(w, eps=cfg['layer_norm_eps'])

    def forward(self, input_ids):
        tm = self.text_model
        n = input_ids.shape[1]
        x = tm.embeddings.token_embedding(input_ids) + tm.embeddings.position_embedding.weight[:n]
        mask = torch.full((n, n), float('-inf')).triu(1)
        for layer in tm.encoder.layers:
            x = layer(x, mask)
        return tm.final_layer_norm(x)


def load(module, weights, strict=True):
    missing, unexpected = module.load_state_dict(weights, strict=False)
    unexpected = [k for k in unexpected if not k.endswith('position_ids')]
    if strict and (missing or unexpected):
        raise SystemExit(f'weights do not match the module: missing {missing[:5]}, unexpected {unexpected[:5]}')
    return module.eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', required=True, help='diffusers folder (random weights)')
    ap.add_argument('--taesd', help='TAESD folder')
    ap.add_argument('--diffusers-src', required=True, help="a diffusers source tree's src/ folder")
    ap.add_argument('--out', required=True)
    ap.add_argument('--stages', default='text,unet,vae,taesd')
    ap.add_argument('--size', type=int, default=512)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    stub_modules()
    sys.path.insert(0, args.diffusers_src)
    latent = args.size // 8
    stages = args.stages.split(',')
    gen = torch.Generator().manual_seed(0)

    def cfg_of(folder):
        with open(os.path.join(folder, 'config.json')) as f:
            return json.load(f)

    def weights_of(folder):
        files = [f for f in os.listdir(folder) if f.endswith('.safetensors')]
        if len(files) != 1:
            raise SystemExit(f'{folder}: expected one .safetensors file, found {files}')
        return read_safetensors(os.path.join(folder, files[0]))

    def export(stage, module, inputs, names, output):
        d = os.path.join(args.out, stage)
        os.makedirs(d, exist_ok=True)
        ref = module(*inputs)
        torch.onnx.export(module, tuple(inputs), os.path.join(d, 'model.onnx'), input_names=names, output_names=[output],
                          opset_version=17, do_constant_folding=False)
        write_safetensors(os.path.join(d, 'io.safetensors'), {**dict(zip(names, inputs)), output: ref})
        meta = {'inputs': [{'name': n, 'shape': list(t.shape), 'dtype': 'I64' if t.dtype == torch.int64 else 'F32'} for n, t in zip(names, inputs)],
                'output': {'name': output, 'shape': list(ref.shape)}, 'torch': torch.__version__}
        with open(os.path.join(d, 'meta.json'), 'w') as f:
            json.dump(meta, f, indent=1)
        print(f'export: {stage} -> {d}', flush=True)

    class Out(torch.nn.Module):  # diffusers modules return output classes: the tensor
        def __init__(self, m, f):
            super().__init__()
            self.m = m
            self.f = f

        def forward(self, *a):
            return self.f(self.m, *a)

    if 'text' in stages:
        folder = os.path.join(args.model, 'text_encoder')
        cfg = cfg_of(folder)
        te = load(CLIPText(cfg), weights_of(folder))
        ids = torch.randint(0, cfg['vocab_size'], (1, cfg['max_position_embeddings']), generator=gen)
        export('text', te, [ids], ['input_ids'], 'last_hidden_state')
        del te
    if 'unet' in stages:
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
        folder = os.path.join(args.model, 'unet')
        cfg = cfg_of(folder)
        unet = load(UNet2DConditionModel.from_config(cfg), weights_of(folder))
        sample = torch.randn((1, cfg['in_channels'], latent, latent), generator=gen)
        t = torch.tensor([999.0])
        ctx = torch.randn((1, 77, cfg['cross_attention_dim']), generator=gen)
        export('unet', Out(unet, lambda m, s, tt, c: m(s, tt, c).sample), [sample, t, ctx], ['sample', 'timestep', 'encoder_hidden_states'], 'out')
        del unet
    if 'vae' in stages:
        from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
        folder = os.path.join(args.model, 'vae')
        cfg = cfg_of(folder)
        vae = load(AutoencoderKL.from_config(cfg), weights_of(folder), strict=False)
        z = torch.randn((1, cfg['latent_channels'], latent, latent), generator=gen)
        export('vae', Out(vae, lambda m, x: m.decode(x).sample), [z], ['latents'], 'image')
        del vae
    if 'taesd' in stages and args.taesd:
        from diffusers.models.autoencoders.autoencoder_tiny import AutoencoderTiny
        cfg = cfg_of(args.taesd)
        tiny = load(AutoencoderTiny.from_config(cfg), weights_of(args.taesd), strict=False)
        z = torch.randn((1, cfg['latent_channels'], latent, latent), generator=gen)
        export('taesd', Out(tiny, lambda m, x: m.decode(x).sample), [z], ['latents'], 'image')


if __name__ == '__main__':
    main()
