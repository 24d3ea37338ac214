"""Workloads: what to send (prompts, datasets, conversations, model mix) and when
(length distributions, open-loop arrivals, load shapes, warm-up). Pure: no Locust imports,
no I/O beyond the local files it is handed."""

from __future__ import annotations

from .arrivals import ArrivalSchedule, inter_arrival_sampler
from .conversation import Conversation, ConversationSource, Turn
from .datasets import Dataset, DatasetError, Entry, load_dataset
from .distributions import Distribution, SpecError, parse_distribution, parse_length, parse_seconds
from .mix import ModelMix, parse_model_mix
from .prompt import Prompt
from .shapes import LinearRamp, Phase, StepSweep, Tick, parse_users
from .synthetic import SharedPrefixes, SyntheticPrompts, fit_text
from .tokens import HFTokenizer, WordCounter, count_tokens, load_tokenizer
from .warmup import Warmup, in_warmup

__all__ = [
    "ArrivalSchedule",
    "Conversation",
    "ConversationSource",
    "Dataset",
    "DatasetError",
    "Distribution",
    "Entry",
    "HFTokenizer",
    "LinearRamp",
    "ModelMix",
    "Phase",
    "Prompt",
    "SharedPrefixes",
    "SpecError",
    "StepSweep",
    "SyntheticPrompts",
    "Tick",
    "Turn",
    "Warmup",
    "WordCounter",
    "count_tokens",
    "fit_text",
    "in_warmup",
    "inter_arrival_sampler",
    "load_dataset",
    "load_tokenizer",
    "parse_distribution",
    "parse_length",
    "parse_model_mix",
    "parse_seconds",
    "parse_users",
]
