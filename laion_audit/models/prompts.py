"""The MLLM prompts of Girrbach et al., verbatim, with their option shuffling, answer parsing and consensus.

Exactness matters: the paper's labels depend on these strings, on the per-image shuffle of the options (its
scripts seed Python's `random` with 42 once and shuffle per image in order) and on the strict parse (the first
whitespace-separated token must be exactly a letter, so "A." does not count).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

PROMPT_SEED = 42
INSTRUCTION = "Answer with a single letter."

GENDER_QUESTION = (
    "What is the gender of the person in the image? Only answer if you are sure and there are visual cues in the "
    "image about the person's gender. If you are not sure, choose the option 'gender is unclear / cannot tell / "
    "no person visible'."
)
GENDER_OPTIONS = {
    "only male person visible": "male",
    "only female person visible": "female",
    "both male and female people visible": "mixed",
    "gender is unclear / cannot tell / no person visible": "unclear",
}

RACE_QUESTION = (
    "What is the race of the person in the image? Only answer if you are sure and there are visual cues in the image "
    "about the person's race or ethnicity. If you are not sure, choose the option 'race is unclear / cannot tell / "
    "no person visible'."
)
RACE_OPTIONS = {
    "White, European or Caucasian": "white",
    "Black, African, or African American": "black",
    "East Asian, such as Chinese, Japanese, or Korean": "east_asian",
    "Latino, Hispanic or South American": "latino",
    "Middle Eastern, Arab or North African": "middle_eastern",
    "Indian, Pakistani, or Bangladeshi": "south_asian",
    "Southeast Asian, such as Filipino, Thai, or Vietnamese": "southeast_asian",
    "race is unclear / cannot tell / no person visible": "unclear",
}

CAPTION_PROMPT = (
    "Describe the highlighted person in one continuous paragraph. Describe the context, how the person looks and "
    "what the person is doing. Focus on objective details and avoid any subjective or emotional descriptions. Only "
    "focus on the highlighted person. Be as detailed and precise as possible. Write in plain, objective and "
    "scientific language."
)

QUESTIONS = {"gender": (GENDER_QUESTION, GENDER_OPTIONS), "race": (RACE_QUESTION, RACE_OPTIONS)}
CONSENSUS_RULES = ("unanimous_parseable", "unanimous_all", "majority")
DEFAULT_CONSENSUS_RULE = "unanimous_all"


@dataclass(frozen=True)
class MultipleChoicePrompt:
    text: str
    options: tuple[str, ...]  # in the order shown, option i has letter "ABCD..."[i]

    def parse(self, answer: str | None) -> str | None:
        """The option string the answer chose, or None (paper: first token must be exactly a letter)."""
        if not answer or not answer.strip():
            return None
        first = answer.upper().strip().split()[0]
        letters = "ABCDEFGH"[: len(self.options)]
        return self.options[letters.index(first)] if len(first) == 1 and first in letters else None


def build_prompts(question: str, n_images: int, seed: int = PROMPT_SEED) -> list[MultipleChoicePrompt]:
    """One prompt per image, options shuffled by a single seeded stream as the paper's scripts do."""
    text, options = QUESTIONS[question]
    rng = random.Random(seed)
    prompts = []
    for _ in range(n_images):
        shuffled = list(options)
        rng.shuffle(shuffled)
        lines = [f"{letter}. {option}" for letter, option in zip("ABCDEFGH", shuffled, strict=False)]
        prompts.append(MultipleChoicePrompt(text + "\n" + "\n".join(lines) + "\n\n" + INSTRUCTION, tuple(shuffled)))
    return prompts


def to_class(question: str, option: str | None) -> str | None:
    return None if option is None else QUESTIONS[question][1][option]


def consensus(labels: Sequence[str | None], rule: str = DEFAULT_CONSENSUS_RULE) -> str | None:
    """Combine the members' parsed labels for one crop.

    - ``unanimous_all`` (default): every member answered parseably, and all agree;
    - ``unanimous_parseable``: every member that gave a parseable answer agrees, and at least one did;
    - ``majority``: a strict majority of all members agrees.
    The paper says only that consensus labels were used (README); the rule is therefore a recorded choice. The
    default is the strict one: real models often answer "A." or "The answer is B", which does not parse, and
    under ``unanimous_parseable`` one member's lone parseable answer would pass for the ensemble's consensus.
    """
    if rule not in CONSENSUS_RULES:
        raise ValueError(f"unknown consensus rule {rule!r}; choose one of {CONSENSUS_RULES}")
    parsed = [label for label in labels if label is not None]
    if rule == "unanimous_parseable":
        return parsed[0] if parsed and len(set(parsed)) == 1 else None
    if rule == "unanimous_all":
        return parsed[0] if parsed and len(parsed) == len(labels) and len(set(parsed)) == 1 else None
    if not parsed:
        return None
    label, count = Counter(parsed).most_common(1)[0]
    return label if count > len(labels) / 2 else None
