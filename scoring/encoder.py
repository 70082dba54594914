"""ONNX Runtime sentence encoder: the serving backend of the zero-shot scorer.

Sessions come from `scoring.session` (provider choice, threads, optimization). Tokenization
uses the `tokenizers` library on the exported tokenizer.json (never transformers), so serving
needs no torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Encoding, Tokenizer

from scoring.base import TOKENIZER_FILE, Manifest, ModelError, load_verified
from scoring.session import (
    CPU,
    CUDA,
    ORT_VERSION,
    Device,
    Runner,
    check_io,
    chosen_provider,
    create_session,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
INPUTS = ("input_ids", "attention_mask")
OUTPUTS = ("embedding",)
Embeddings = npt.NDArray[np.float32]


class OnnxEncoder:
    """Texts -> L2-normalized embeddings with an exported, manifest-verified model."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: Device = "auto",
        threads: int | None = None,
        max_length: int = 128,
        batch_size: int = 64,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model_dir = Path(model_dir)
        self.manifest: Manifest = load_verified(self.model_dir)
        for needed in (MODEL_FILE, TOKENIZER_FILE):
            if needed not in self.manifest.files:
                raise ModelError(f"{self.model_dir}: manifest does not list {needed}")
        if not 2 <= max_length <= self.manifest.max_length:
            # Parity was only checked up to the manifest's length.
            raise ModelError(
                f"max_length {max_length} outside 2..{self.manifest.max_length} "
                f"(the length this model was exported and checked for)"
            )
        self.max_length = max_length
        self.batch_size = batch_size
        self.dim = self.manifest.embedding_dim
        self.version = self.manifest.version
        self._tokenizer = _load_tokenizer(self.model_dir / TOKENIZER_FILE, max_length)
        self._pad_id = _pad_id(self._tokenizer)
        session = create_session(self.model_dir / MODEL_FILE, device=device, threads=threads)
        check_io(session, INPUTS, OUTPUTS, what=str(self.model_dir / MODEL_FILE))
        self._runner = Runner(session, OUTPUTS)
        self._provider = chosen_provider(session)
        log.info(
            "encoder %s loaded from %s on %s (threads=%s, max_length=%d, batch_size=%d)",
            self.version,
            self.model_dir,
            self._provider,
            threads or "default",
            max_length,
            batch_size,
        )

    @property
    def provider(self) -> str:
        """The execution provider ONNX Runtime actually chose, e.g. CPUExecutionProvider."""
        return self._provider

    def encode(self, texts: Sequence[str], timings: dict[str, float] | None = None) -> Embeddings:
        """(len(texts), dim) float32 unit vectors, in the order of `texts`; seconds spent
        are added to timings["tokenize"] and timings["encode"] when given."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        started = time.perf_counter()
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(texts))
        # Similar lengths share a batch, so little compute goes into padding.
        order = np.argsort(lengths, kind="stable")
        tokenized = time.perf_counter()
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self.run_ids(*self._pad([encodings[i] for i in idx]))
        if timings is not None:
            timings["tokenize"] = timings.get("tokenize", 0.0) + tokenized - started
            timings["encode"] = timings.get("encode", 0.0) + time.perf_counter() - tokenized
        return out

    def run_ids(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> Embeddings:
        """Run the graph on already tokenized, padded input (used by parity checks too)."""
        result = self._runner.run({"input_ids": input_ids, "attention_mask": attention_mask})
        return np.asarray(result[0], dtype=np.float32)

    def tokenize(self, texts: Sequence[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(input_ids, attention_mask) of `texts` padded to their longest, as serving does."""
        return self._pad(self._tokenizer.encode_batch(list(texts)))

    def _pad(
        self, encodings: Sequence[Encoding]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        width = max((len(e.ids) for e in encodings), default=0)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        return ids, mask


def _load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises plain Exception on bad files
        raise ModelError(f"{path}: cannot load tokenizer ({exc})") from exc
    tokenizer.enable_truncation(max_length=max_length)
    # tokenizer.json ships fixed-length padding; encode() pads per batch itself.
    tokenizer.no_padding()
    return tokenizer


def _pad_id(tokenizer: Tokenizer) -> int:
    pad = tokenizer.token_to_id("[PAD]")
    return 0 if pad is None else int(pad)


__all__ = ["CPU", "CUDA", "MODEL_FILE", "ORT_VERSION", "TOKENIZER_FILE", "Device", "OnnxEncoder"]
