"""Realistic, deterministic SQuAD-format mock data for a domain, made on demand.

Why: the training pipeline needs data that looks like a real extractive-QA task (several
entities per passage, paraphrased questions, distractors, unanswerable questions, passages
longer than one 384-token window) without downloading anything, and whose answer spans are
correct by construction. Spans are recorded where each value is written while the context is
assembled (never searched for afterwards) and every record is checked before it is returned
or written.

Usage:
    python mock_dataset.py --domain equipment_manual --output_dir data/mock
    python mock_dataset.py --domain mock_domains/example_domain.json --impossible_ratio 0.33
    python mock_dataset.py --list_domains

Domain spec (JSON, or YAML when PyYAML is installed); every key is required:
    name                  id-safe string (letters, digits, "_", "-"); used in ids and "version".
    description           one line shown by --list_domains.
    entity_type           what the entities are, e.g. "machine" (documentation only).
    entities              >= 8 distinct names; none may contain another (so "entity not
                          mentioned" can be decided reliably).
    title_template        template; may use {entity} (first entity of the passage) and {number}.
    attributes            mapping key -> attribute (>= 2), each with:
        label               lower-case phrase, e.g. "torque setting" (used by distractors).
        values              >= 4 distinct answer strings, no surrounding whitespace.
        context_templates   sentences with {entity} and {value} exactly once each; {value}
                            must not touch a letter/digit/brace (answers sit on word boundaries).
        question_templates  questions with {entity} exactly once.
    distractor_templates  sentences with {entity} and {value} exactly once, optionally
                          {attribute}; they state another entity's value of an attribute the
                          passage also states, so the reader must match the entity.
    filler_sentences      plain sentences without placeholders (may be empty).
See mock_domains/example_domain.json for a complete example.

A passage ("context") states facts about 2-3 entities (4-6 for long ones, which are padded to
at least LONG_CONTEXT_MIN_WORDS whitespace words, hence more than 384 BERT tokens). Questions
are about stated (entity, attribute) pairs; unanswerable ones ask about an attribute the passage
does not state for a mentioned entity, or about an entity the passage never mentions.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import string
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

try:
    import yaml
except ImportError:  # YAML specs are optional
    yaml = None

logger = logging.getLogger(__name__)

FORMATS = ("json", "jsonl", "squad")
DEFAULT_SIZES = {"train": 600, "validation": 150, "test": 150}
LONG_CONTEXT_MIN_WORDS = 400  # whitespace words; every word is >= 1 word piece, so > 384 tokens
MIN_ENTITIES = 8
MAX_DISTRACTOR_ENTITIES = 2
QUESTIONS_PER_CONTEXT = {"short": (2, 4), "long": (4, 8)}

_PEOPLE = ["Marta Kowalski", "Daniel Osei", "Priya Raman", "Tomás Herrera", "Ingrid Lund", "Kenji Watanabe",
           "Fatima El-Sayed", "Oliver Grant", "Chiara Bianchi", "Samuel Adeyemi", "Hannah Becker", "Luis Ortega"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]

BUILTIN_DOMAINS: dict[str, dict[str, Any]] = {
    "equipment_manual": {
        "name": "equipment_manual",
        "description": "Workshop maintenance manual: torque, service intervals, lubricants, parts.",
        "entity_type": "machine",
        "entities": ["HX-220 hydraulic press", "TR-40 lathe", "CM-7 milling centre", "PX-90 air compressor",
                     "BL-12 band saw", "KD-350 injection moulder", "VR-5 vacuum pump", "GT-18 surface grinder",
                     "SW-60 spot welder", "DL-24 drill press", "RC-8 robotic arm", "MT-45 belt conveyor"],
        "title_template": "Maintenance manual section {number}: {entity}",
        "attributes": {
            "torque_setting": {"label": "torque setting", "values": [f"{n} Nm" for n in range(20, 125, 5)],
                "context_templates": ["Bolts on the {entity} must be tightened to {value}.",
                                      "The {entity} uses a torque setting of {value} for its mounting bolts.",
                                      "For the {entity}, set the torque wrench to {value}."],
                "question_templates": ["What is the torque setting for the {entity}?",
                                       "How tightly should the {entity}'s bolts be torqued?",
                                       "To what torque should the mounting bolts of the {entity} be tightened?"]},
            "service_interval": {"label": "service interval",
                "values": [f"every {n} operating hours" for n in range(100, 1050, 50)],
                "context_templates": ["The {entity} needs a full service {value}.",
                                      "Schedule preventive maintenance for the {entity} {value}.",
                                      "According to the schedule, the {entity} must be serviced {value}."],
                "question_templates": ["How often does the {entity} need to be serviced?",
                                       "What is the service interval for the {entity}?",
                                       "How frequently should maintenance be scheduled for the {entity}?"]},
            "lubricant": {"label": "recommended lubricant",
                "values": ["lithium grease EP2", "ISO VG 46 hydraulic oil", "synthetic gear oil 75W-90",
                           "food-grade silicone grease", "molybdenum disulfide paste", "SAE 30 engine oil",
                           "PTFE dry lubricant", "ISO VG 68 turbine oil", "white lithium spray"],
                "context_templates": ["Lubricate the {entity} only with {value}.",
                                      "The recommended lubricant for the {entity} is {value}.",
                                      "Technicians should apply {value} to the moving parts of the {entity}."],
                "question_templates": ["Which lubricant should be used on the {entity}?",
                                       "What should the moving parts of the {entity} be lubricated with?",
                                       "What is the recommended lubricant for the {entity}?"]},
            "max_temperature": {"label": "maximum operating temperature",
                "values": [f"{n} °C" for n in range(40, 100, 5)],
                "context_templates": ["The {entity} must not run above {value}.",
                                      "The maximum operating temperature of the {entity} is {value}.",
                                      "Shut down the {entity} if its housing temperature exceeds {value}."],
                "question_templates": ["What is the maximum operating temperature of the {entity}?",
                                       "Above what temperature must the {entity} be shut down?",
                                       "How hot may the {entity} run?"]},
            "filter_part": {"label": "filter part number",
                "values": [f"FC-{3100 + 47 * i}-{'ABCDEFGH'[i % 8]}" for i in range(16)],
                "context_templates": ["The replacement filter for the {entity} is part number {value}.",
                                      "Order cartridge {value} when changing the filter on the {entity}.",
                                      "The {entity} takes filter cartridge {value}."],
                "question_templates": ["What is the part number of the replacement filter for the {entity}?",
                                       "Which filter cartridge does the {entity} take?",
                                       "What cartridge should be ordered when changing the filter on the {entity}?"]},
            "technician": {"label": "responsible technician", "values": _PEOPLE,
                "context_templates": ["Maintenance on the {entity} is signed off by {value}.",
                                      "{value} is the certified technician for the {entity}.",
                                      "Report any fault on the {entity} to {value}."],
                "question_templates": ["Who signs off maintenance on the {entity}?",
                                       "Who is the certified technician for the {entity}?",
                                       "To whom should faults on the {entity} be reported?"]},
        },
        "distractor_templates": ["Do not confuse this with the {entity}, whose {attribute} is {value}.",
                                 "The {attribute} of the {entity}, covered in a separate manual, is {value}.",
                                 "An older revision of the {entity} documentation gives {value} as the {attribute}."],
        "filler_sentences": [
            "Always disconnect the main power supply before opening any access panel.",
            "Wear safety glasses and hearing protection in the workshop at all times.",
            "Record every maintenance task in the machine logbook with the date and your initials.",
            "Replacement parts must come from the approved supplier list.",
            "If a warning light stays on after a restart, stop work and call the shift supervisor.",
            "Clean up spilled oil immediately to prevent slips.",
            "Lockout tags must stay in place until the person who fitted them removes them.",
            "Keep the area around each machine clear of loose tools and offcuts."],
    },
    "hr_policy": {
        "name": "hr_policy",
        "description": "Company HR handbook: leave, notice, probation, remote work, budgets, contacts.",
        "entity_type": "employee group",
        "entities": ["Finance department", "Customer Support team", "Warehouse crew", "Engineering department",
                     "Legal team", "Marketing department", "Facilities team", "Sales team", "Research group",
                     "Procurement office", "Quality Assurance team", "Data Science group"],
        "title_template": "Employee handbook, chapter {number}: {entity}",
        "attributes": {
            "annual_leave": {"label": "annual leave entitlement", "values": [f"{n} days" for n in range(20, 36)],
                "context_templates": ["Members of the {entity} are entitled to {value} of paid annual leave.",
                                      "The {entity} receives {value} of holiday per calendar year.",
                                      "Annual leave for the {entity} is set at {value}."],
                "question_templates": ["How much annual leave do members of the {entity} get?",
                                       "How many days of paid holiday does the {entity} receive each year?",
                                       "What is the annual leave entitlement for the {entity}?"]},
            "notice_period": {"label": "notice period",
                "values": ["two weeks", "three weeks", "four weeks", "six weeks", "eight weeks", "one month",
                           "two months", "three months"],
                "context_templates": ["Staff in the {entity} must give {value} of notice before resigning.",
                                      "The notice period for the {entity} is {value}.",
                                      "Anyone leaving the {entity} has to hand in notice {value} in advance."],
                "question_templates": ["How much notice must staff in the {entity} give before resigning?",
                                       "What is the notice period for the {entity}?",
                                       "How far in advance must someone leaving the {entity} hand in notice?"]},
            "probation_period": {"label": "probation period",
                "values": ["three months", "four months", "six months", "nine months", "90 days", "120 days",
                           "180 days", "one year"],
                "context_templates": ["New hires in the {entity} serve a probation period of {value}.",
                                      "Probation for the {entity} lasts {value}.",
                                      "The {entity} confirms new employees after a probation of {value}."],
                "question_templates": ["How long is the probation period in the {entity}?",
                                       "How long do new hires in the {entity} stay on probation?",
                                       "What probation period applies to new employees of the {entity}?"]},
            "remote_work": {"label": "remote work allowance",
                "values": ["one day per week", "two days per week", "three days per week", "four days per week",
                           "every Friday", "on Mondays and Fridays", "up to six days per month",
                           "up to ten days per month"],
                "context_templates": ["Employees in the {entity} may work remotely {value}.",
                                      "The {entity} allows remote work {value}.",
                                      "Remote work for the {entity} is permitted {value}."],
                "question_templates": ["How often may employees in the {entity} work remotely?",
                                       "When is the {entity} allowed to work from home?",
                                       "How much remote work does the {entity} permit?"]},
            "training_budget": {"label": "training budget", "values": [f"${n:,}" for n in range(800, 4100, 300)],
                "context_templates": ["Each member of the {entity} has an annual training budget of {value}.",
                                      "The {entity} may spend up to {value} per person on courses each year.",
                                      "Professional development funding for the {entity} is {value} per employee."],
                "question_templates": ["What is the annual training budget for each member of the {entity}?",
                                       "How much can the {entity} spend per person on courses each year?",
                                       "How much development funding does each employee in the {entity} get?"]},
            "hr_contact": {"label": "HR contact", "values": _PEOPLE,
                "context_templates": ["Questions from the {entity} about this policy go to {value}.",
                                      "The HR business partner for the {entity} is {value}.",
                                      "{value} handles leave requests for the {entity}."],
                "question_templates": ["Who is the HR business partner for the {entity}?",
                                       "Who handles leave requests for the {entity}?",
                                       "Whom should the {entity} contact with questions about this policy?"]},
        },
        "distractor_templates": ["This differs from the {entity}, where the {attribute} is {value}.",
                                 "The {entity} follows a separate agreement, under which the {attribute} is {value}.",
                                 "Until last year the {attribute} for the {entity} was {value}."],
        "filler_sentences": [
            "This handbook applies to all permanent employees unless a contract says otherwise.",
            "Managers must approve leave requests within five working days.",
            "Policy changes are announced on the intranet at least one month in advance.",
            "Employees can raise a grievance confidentially through the HR portal.",
            "Part-time staff receive benefits in proportion to their contracted hours.",
            "Unused leave cannot be paid out except when employment ends.",
            "All employees complete the mandatory data protection course in their first month.",
            "Expense claims must be submitted with receipts by the end of the following month."],
    },
    "clinical_trial": {
        "name": "clinical_trial",
        "description": "Clinical trial registry summaries: enrolment, endpoints, investigators, doses, dates.",
        "entity_type": "trial",
        "entities": ["AURORA-2 trial", "BEACON-HF study", "CASCADE-3 trial", "DELTA-RX study", "EMBER-1 trial",
                     "FALCON-PD study", "GLACIER-4 trial", "HORIZON-CKD study", "IRIS-7 trial", "JUNIPER-2 study",
                     "KESTREL-AF trial", "LANTERN-5 study"],
        "title_template": "Trial registry summary {number}: {entity}",
        "attributes": {
            "enrollment": {"label": "enrolment",
                "values": [f"{n} participants" for n in (120, 184, 240, 312, 396, 450, 528, 612, 740, 864, 1020)],
                "context_templates": ["The {entity} enrolled {value}.",
                                      "A total of {value} took part in the {entity}.",
                                      "Recruitment for the {entity} closed at {value}."],
                "question_templates": ["How many participants were enrolled in the {entity}?",
                                       "How many people took part in the {entity}?",
                                       "At what number did recruitment for the {entity} close?"]},
            "primary_endpoint": {"label": "primary endpoint",
                "values": ["progression-free survival at 12 months", "change in HbA1c from baseline",
                           "time to first heart failure hospitalisation", "overall survival at five years",
                           "reduction in systolic blood pressure", "annual rate of relapse",
                           "change in forced expiratory volume", "complete remission rate at week 24"],
                "context_templates": ["The primary endpoint of the {entity} was {value}.",
                                      "The {entity} measured {value} as its primary outcome.",
                                      "Investigators in the {entity} judged efficacy by {value}."],
                "question_templates": ["What was the primary endpoint of the {entity}?",
                                       "What primary outcome did the {entity} measure?",
                                       "How was efficacy judged in the {entity}?"]},
            "principal_investigator": {"label": "principal investigator", "values": [f"Dr. {p}" for p in _PEOPLE],
                "context_templates": ["The {entity} was led by {value}.",
                                      "{value} served as principal investigator of the {entity}.",
                                      "The principal investigator for the {entity} was {value}."],
                "question_templates": ["Who led the {entity}?", "Who was the principal investigator of the {entity}?",
                                       "Which investigator ran the {entity}?"]},
            "dose": {"label": "dose",
                "values": ["25 mg twice daily", "50 mg once daily", "10 mg/kg every three weeks", "200 mg once weekly",
                           "5 mg at bedtime", "100 mg every 12 hours", "0.5 mg/kg daily", "400 mg on days 1 to 14"],
                "context_templates": ["Participants in the {entity} received {value} of the study drug.",
                                      "The {entity} tested a dose of {value}.",
                                      "In the {entity}, the study drug was given at {value}."],
                "question_templates": ["What dose did participants in the {entity} receive?",
                                       "Which dose was tested in the {entity}?",
                                       "At what dose was the study drug given in the {entity}?"]},
            "start_date": {"label": "start date",
                "values": [f"{3 + (i * 5) % 25} {_MONTHS[(i * 7) % 12]} {2016 + i % 8}" for i in range(16)],
                "context_templates": ["The {entity} enrolled its first patient on {value}.",
                                      "Recruitment for the {entity} began on {value}.",
                                      "The {entity} started on {value}."],
                "question_templates": ["When did the {entity} start?",
                                       "On what date did the {entity} enrol its first patient?",
                                       "When did recruitment for the {entity} begin?"]},
            "follow_up": {"label": "follow-up period",
                "values": ["18 months", "24 weeks", "52 weeks", "three years", "36 months", "12 weeks", "two years",
                           "30 months", "five years", "48 weeks"],
                "context_templates": ["Participants in the {entity} were followed for {value}.",
                                      "The follow-up period of the {entity} was {value}.",
                                      "The {entity} tracked outcomes over {value}."],
                "question_templates": ["How long were participants in the {entity} followed?",
                                       "What was the follow-up period of the {entity}?",
                                       "Over what period did the {entity} track outcomes?"]},
        },
        "distractor_templates": ["The {attribute} of the {entity}, reported separately, was {value}.",
                                 "In contrast, the {entity} reported {value} as its {attribute}.",
                                 "A preliminary registry entry for the {entity} listed the {attribute} as {value}."],
        "filler_sentences": [
            "All participants gave written informed consent before any study procedure.",
            "An independent data monitoring committee reviewed safety every six months.",
            "The protocol was approved by the ethics committee of each participating site.",
            "Adverse events were coded using the standard medical dictionary.",
            "Analyses followed the intention-to-treat principle.",
            "Missing outcome data were handled by multiple imputation.",
            "The results were presented at an international congress before publication.",
            "Participants could withdraw at any time without giving a reason."],
    },
}


class DomainSpecError(ValueError):
    """A domain spec is malformed; the message names the file (or source) and the offending key."""


class DatasetCheckError(RuntimeError):
    """Generated data failed a self-check: a generator bug, so nothing is written."""


# ----------------------------------------------------------------------------- spec validation

def _fail(source: str, key: str, problem: str) -> NoReturn:
    raise DomainSpecError(f"{source}: key '{key}' {problem}")


def _get(spec: dict, key: str, kind: type, path: str, source: str) -> Any:
    if not isinstance(spec, dict) or key not in spec:
        _fail(source, path + key, "is missing")
    if not isinstance(spec[key], kind):
        _fail(source, path + key, f"must be a {kind.__name__}, got {type(spec[key]).__name__}")
    return spec[key]


def _string_list(spec: dict, key: str, path: str, source: str, min_items: int) -> list[str]:
    items = _get(spec, key, list, path, source)
    if len(items) < min_items:
        _fail(source, path + key, f"needs at least {min_items} entries, got {len(items)}")
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item.strip() or item != item.strip():
            _fail(source, f"{path}{key}[{index}]", "must be a non-empty string without surrounding whitespace")
    if len(set(items)) != len(items):
        _fail(source, path + key, "contains duplicates")
    return items


def _check_template(template: str, key: str, source: str, required: set[str], allowed: set[str]) -> None:
    """Allow only bare named fields so "{value}" can be located literally when rendering."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        _fail(source, key, f"is not a valid template ({err}): {template!r}")
    fields = [name for _, name, spec, conv in parsed if name is not None]
    if "{{" in template or "}}" in template or any(spec or conv for _, name, spec, conv in parsed if name):
        _fail(source, key, f"may only use plain placeholders like {{entity}}: {template!r}")
    for name in sorted(set(fields) - allowed):
        _fail(source, key, f"uses unknown placeholder {{{name}}} (allowed: {sorted(allowed)}): {template!r}")
    for name in sorted(required):
        if fields.count(name) != 1:
            _fail(source, key, f"must contain {{{name}}} exactly once: {template!r}")
    if "value" in required:
        start = template.index("{value}")
        before = template[start - 1] if start else " "
        after = template[start + 7] if start + 7 < len(template) else " "
        if before.isalnum() or after.isalnum() or before in "{}" or after in "{}":
            _fail(source, key, f"must keep {{value}} on a word boundary: {template!r}")


def validate_domain(spec: dict, source: str = "<dict>") -> dict:
    """Check a domain spec and return a normalised copy, so generation never meets bad data."""
    if not isinstance(spec, dict):
        raise DomainSpecError(f"{source}: a domain spec must be a mapping, got {type(spec).__name__}")
    name = _get(spec, "name", str, "", source)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        _fail(source, "name", f"may only contain letters, digits, '_' and '-': {name!r}")
    entities = _string_list(spec, "entities", "", source, MIN_ENTITIES)
    for outer in entities:
        for inner in entities:
            if inner != outer and inner.lower() in outer.lower():
                _fail(source, "entities", f"has {inner!r} inside {outer!r}; names must not contain each other")
    title = _get(spec, "title_template", str, "", source)
    _check_template(title, "title_template", source, set(), {"entity", "number"})
    attributes = _get(spec, "attributes", dict, "", source)
    if len(attributes) < 2:
        _fail(source, "attributes", "needs at least 2 attributes")
    clean_attributes = {}
    for attr_key, attribute in attributes.items():
        path = f"attributes.{attr_key}."
        if not isinstance(attribute, dict):
            _fail(source, path[:-1], "must be a mapping")
        label = _get(attribute, "label", str, path, source)
        values = _string_list(attribute, "values", path, source, 4)
        contexts = _string_list(attribute, "context_templates", path, source, 1)
        questions = _string_list(attribute, "question_templates", path, source, 1)
        for index, template in enumerate(contexts):
            _check_template(template, f"{path}context_templates[{index}]", source, {"entity", "value"},
                            {"entity", "value"})
        for index, template in enumerate(questions):
            _check_template(template, f"{path}question_templates[{index}]", source, {"entity"}, {"entity"})
        clean_attributes[str(attr_key)] = {"label": label, "values": values, "context_templates": contexts,
                                           "question_templates": questions}
    distractors = _string_list(spec, "distractor_templates", "", source, 1)
    for index, template in enumerate(distractors):
        _check_template(template, f"distractor_templates[{index}]", source, {"entity", "value"},
                        {"entity", "value", "attribute"})
    fillers = _string_list(spec, "filler_sentences", "", source, 0)
    return {"name": name, "description": _get(spec, "description", str, "", source),
            "entity_type": _get(spec, "entity_type", str, "", source), "entities": entities,
            "title_template": title, "attributes": clean_attributes, "distractor_templates": distractors,
            "filler_sentences": fillers}


def load_domain(domain: str | dict) -> dict:
    """Resolve a built-in name, a spec file path (.json, or .yaml/.yml) or a spec dict to a valid spec."""
    if isinstance(domain, dict):
        return validate_domain(domain)
    if domain in BUILTIN_DOMAINS:
        return validate_domain(BUILTIN_DOMAINS[domain], f"built-in domain {domain!r}")
    path = Path(domain)
    if not path.is_file():
        raise DomainSpecError(f"unknown domain {domain!r}: not a built-in ({', '.join(BUILTIN_DOMAINS)}) "
                              "and not an existing spec file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        if yaml is None:
            raise DomainSpecError(f"{path}: YAML specs need PyYAML installed; use a .json spec instead")
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise DomainSpecError(f"{path}: invalid YAML ({err})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DomainSpecError(f"{path}: invalid JSON ({err})") from None
    return validate_domain(data, str(path))


# ----------------------------------------------------------------------------- generation

@dataclass
class _Passage:
    title: str
    text: str
    facts: dict[tuple[str, str], tuple[str, int]]  # (entity, attribute) -> (value, answer_start)
    fact_entities: list[str]
    mentioned: set[str]  # fact and distractor entities


def _render(template: str, value: str, **fields: str) -> tuple[str, int]:
    """Fill a template and return (sentence, offset of the value within it)."""
    before, after = template.split("{value}")
    prefix = before.format(**fields)
    return prefix + value + after.format(**fields), len(prefix)


def _build_passage(spec: dict, rng: random.Random, number: int, is_long: bool, min_facts: int,
                   max_facts: int) -> _Passage:
    """Assemble one context sentence by sentence, recording each fact's answer offset as it is written."""
    attributes = spec["attributes"]
    max_fact_entities = len(spec["entities"]) - MAX_DISTRACTOR_ENTITIES - 1  # keep one entity never mentioned
    if is_long:
        fact_entities = rng.sample(spec["entities"], min(rng.randint(4, 6), max_fact_entities))
        pairs = [(entity, attr) for entity in fact_entities for attr in attributes]
    else:
        n_facts = rng.randint(min_facts, max_facts)
        fact_entities = rng.sample(spec["entities"], min(rng.randint(2, 3), n_facts, max_fact_entities))
        n_attrs = min(len(attributes), max(2, -(-n_facts // len(fact_entities)) + 1))
        shared_attrs = rng.sample(list(attributes), n_attrs)  # a small shared set => same attribute, other entity
        firsts = [(entity, rng.choice(shared_attrs)) for entity in fact_entities]
        rest = [(e, a) for e in fact_entities for a in shared_attrs if (e, a) not in firsts]
        rng.shuffle(rest)
        pairs = firsts + rest[:max(0, n_facts - len(firsts))]
    pools: dict[str, list[str]] = {}

    def next_value(attr: str) -> str:  # distinct values per attribute within a passage while the pool lasts
        if not pools.get(attr):
            pools[attr] = rng.sample(attributes[attr]["values"], len(attributes[attr]["values"]))
        return pools[attr].pop()

    sentences: list[tuple[str, tuple[str, str] | None, str, int]] = []  # (text, fact key, value, offset)
    for entity in fact_entities:
        group = [pair for pair in pairs if pair[0] == entity]
        rng.shuffle(group)
        for _, attr in group:
            value = next_value(attr)
            text, offset = _render(rng.choice(attributes[attr]["context_templates"]), value, entity=entity)
            sentences.append((text, (entity, attr), value, offset))
    stated_attrs = sorted({attr for _, attr in pairs}, key=list(attributes).index)
    others = [entity for entity in spec["entities"] if entity not in fact_entities]
    distractor_entities = rng.sample(others, MAX_DISTRACTOR_ENTITIES)
    mentioned = set(fact_entities)

    def add_distractor() -> None:
        entity, attr = rng.choice(distractor_entities), rng.choice(stated_attrs)
        mentioned.add(entity)
        text, _ = _render(rng.choice(spec["distractor_templates"]), next_value(attr), entity=entity,
                          attribute=attributes[attr]["label"])
        sentences.insert(rng.randint(0, len(sentences)), (text, None, "", 0))

    fillers = spec["filler_sentences"]
    chosen_fillers = rng.sample(fillers, len(fillers) if is_long else min(len(fillers), rng.randint(0, 2)))
    for filler in chosen_fillers:
        sentences.insert(rng.randint(0, len(sentences)), (filler, None, "", 0))
    for _ in range(3 if is_long else rng.randint(1, 2)):
        add_distractor()
    for _ in range(500):
        if not is_long or sum(len(s[0].split()) for s in sentences) >= LONG_CONTEXT_MIN_WORDS:
            break
        add_distractor()
    else:
        raise DatasetCheckError(f"domain {spec['name']!r}: cannot pad a context to {LONG_CONTEXT_MIN_WORDS} words")
    facts: dict[tuple[str, str], tuple[str, int]] = {}
    pieces: list[str] = []
    length = 0
    for text, key, value, offset in sentences:
        if pieces:
            length += 1  # the joining space
        if key is not None:
            facts[key] = (value, length + offset)
        pieces.append(text)
        length += len(text)
    title = spec["title_template"].format(entity=fact_entities[0], number=number)
    return _Passage(title, " ".join(pieces), facts, fact_entities, mentioned)


def _ask(spec: dict, rng: random.Random, passage: _Passage, impossible: bool,
         asked: set[tuple[str, str]]) -> tuple[str, tuple[str, int] | None, str, str | None] | None:
    """Pick an unasked (entity, attribute) pair; returns (question, answer, attribute, unanswerable reason)."""
    attributes = spec["attributes"]
    if not impossible:
        options = [key for key in passage.facts if key not in asked]
        reason = None
    else:
        unstated = [(e, a) for e in passage.fact_entities for a in attributes if (e, a) not in passage.facts]
        stated_attrs = sorted({a for _, a in passage.facts}, key=list(attributes).index)
        absent = [(e, a) for e in spec["entities"] if e not in passage.mentioned and e not in passage.text
                  for a in stated_attrs]
        kinds = {"unstated_attribute": [k for k in unstated if k not in asked],
                 "absent_entity": [k for k in absent if k not in asked]}
        kinds = {kind: keys for kind, keys in kinds.items() if keys}
        if not kinds:
            return None
        reason = rng.choice(sorted(kinds))
        options = kinds[reason]
    if not options:
        return None
    entity, attr = rng.choice(options)
    asked.add((entity, attr))
    question = rng.choice(attributes[attr]["question_templates"]).format(entity=entity)
    return question, None if impossible else passage.facts[(entity, attr)], attr, reason


def _generate_split(spec: dict, split: str, n_questions: int, seed: int, impossible_ratio: float,
                    long_context_ratio: float, min_facts: int, max_facts: int,
                    seen_contexts: set[str]) -> tuple[list[dict], list[tuple[str, str | None]]]:
    rng = random.Random(f"{seed}:{spec['name']}:{split}")  # per split, so one split's size leaves others alone
    n_impossible = round(n_questions * impossible_ratio)
    flags = [True] * n_impossible + [False] * (n_questions - n_impossible)
    rng.shuffle(flags)
    records: list[dict] = []
    question_types: list[tuple[str, str | None]] = []
    number = 0
    while len(records) < n_questions:
        is_long = rng.random() < long_context_ratio
        passage = _build_passage(spec, rng, number + 1, is_long, min_facts, max_facts)
        if passage.text in seen_contexts:  # keep every context unique, across splits too
            continue
        seen_contexts.add(passage.text)
        number += 1
        low, high = QUESTIONS_PER_CONTEXT["long" if is_long else "short"]
        wanted = min(rng.randint(low, high), n_questions - len(records))
        asked: set[tuple[str, str]] = set()
        for impossible in flags[len(records):len(records) + wanted]:
            made = _ask(spec, rng, passage, impossible, asked)
            if made is None:
                break
            question, answer, attr, reason = made
            records.append({
                "id": f"{spec['name']}-{seed}-{split}-{len(records):05d}", "title": passage.title,
                "context": passage.text, "question": question,
                "answers": {"text": [answer[0]] if answer else [], "answer_start": [answer[1]] if answer else []},
                "is_impossible": answer is None})
            question_types.append((attr, reason))
        if not asked:
            raise DatasetCheckError(f"domain {spec['name']!r}: no question could be asked about a context")
    return records, question_types


def verify_dataset(splits: dict[str, list[dict]]) -> None:
    """Raise DatasetCheckError unless every span slices to its text on word boundaries and no context
    appears in two splits; run before anything is returned or written."""
    owner: dict[str, str] = {}
    for split, records in splits.items():
        for record in records:
            answers, context = record["answers"], record["context"]
            if record["is_impossible"] != (not answers["text"]) or len(answers["text"]) != len(answers["answer_start"]):
                raise DatasetCheckError(f"{record['id']}: is_impossible does not match answers {answers}")
            for text, start in zip(answers["text"], answers["answer_start"]):
                end = start + len(text)
                if start < 0 or context[start:end] != text:
                    raise DatasetCheckError(f"{record['id']}: context[{start}:{end}] is "
                                            f"{context[start:end]!r}, expected {text!r}")
                if (start > 0 and context[start - 1].isalnum()) or (end < len(context) and context[end].isalnum()):
                    raise DatasetCheckError(f"{record['id']}: answer {text!r} is not on word boundaries")
            if owner.setdefault(context, split) != split:
                raise DatasetCheckError(f"{record['id']}: context also appears in split {owner[context]!r}")


def _generate(domain: str | dict, sizes: dict[str, int], seed: int, impossible_ratio: float,
              long_context_ratio: float, min_facts: int,
              max_facts: int) -> tuple[dict, dict[str, list[dict]], dict[str, list[tuple[str, str | None]]]]:
    for name, ratio in (("impossible_ratio", impossible_ratio), ("long_context_ratio", long_context_ratio)):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {ratio}")
    if not 1 <= min_facts <= max_facts:
        raise ValueError(f"need 1 <= min_facts <= max_facts, got {min_facts} and {max_facts}")
    if any(not isinstance(n, int) or n < 0 for n in sizes.values()):
        raise ValueError(f"split sizes must be non-negative integers, got {sizes}")
    spec = load_domain(domain)
    seen: set[str] = set()
    splits, types = {}, {}
    for split, n_questions in sizes.items():
        splits[split], types[split] = _generate_split(spec, split, n_questions, seed, impossible_ratio,
                                                      long_context_ratio, min_facts, max_facts, seen)
    verify_dataset(splits)
    return spec, splits, types


def generate_dataset(domain: str | dict, sizes: dict[str, int] | None = None, seed: int = 42,
                     impossible_ratio: float = 0.0, long_context_ratio: float = 0.1, min_facts: int = 4,
                     max_facts: int = 8) -> dict[str, list[dict]]:
    """Make {split: flat records} for a built-in name, spec path or spec dict; sizes count questions.

    long_context_ratio is the share of contexts padded past LONG_CONTEXT_MIN_WORDS words;
    impossible_ratio is the exact share (rounded) of unanswerable questions per split.
    """
    return _generate(domain, dict(sizes or DEFAULT_SIZES), seed, impossible_ratio, long_context_ratio,
                     min_facts, max_facts)[1]


# ----------------------------------------------------------------------------- output

def _to_squad(records: list[dict]) -> list[dict]:
    """Nest flat records as articles (one per title) -> paragraphs (one per context) -> qas."""
    articles: dict[str, dict[str, list[dict]]] = {}
    for record in records:
        qas = articles.setdefault(record["title"], {}).setdefault(record["context"], [])
        answers = [{"text": t, "answer_start": s}
                   for t, s in zip(record["answers"]["text"], record["answers"]["answer_start"])]
        qas.append({"id": record["id"], "question": record["question"], "answers": answers,
                    "is_impossible": record["is_impossible"]})
    return [{"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
            for title, paragraphs in articles.items()]


def write_dataset(splits: dict[str, list[dict]], output_dir: str | Path, fmt: str = "json",
                  domain_name: str | None = None) -> dict[str, Path]:
    """Check, then write each split to {output_dir}/{split}.json|jsonl (UTF-8); returns split -> path."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    verify_dataset(splits)
    version = f"mock-{domain_name}" if domain_name else "mock"
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, records in splits.items():
        path = output_dir / f"{split}.{'jsonl' if fmt == 'jsonl' else 'json'}"
        if fmt == "jsonl":
            text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        else:
            data = records if fmt == "json" else _to_squad(records)
            text = json.dumps({"version": version, "data": data}, ensure_ascii=False, indent=1) + "\n"
        path.write_text(text, encoding="utf-8", newline="\n")
        paths[split] = path
    return paths


def summarize(splits: dict[str, list[dict]], question_types: dict[str, list[tuple[str, str | None]]],
              seconds: float) -> str:
    """A plain-text table of counts per split and per question type, plus generation speed."""
    lines = [f"{'split':<12}{'questions':>10}{'contexts':>10}{'answerable':>12}{'unanswerable':>14}{'long ctx':>10}"]
    for split, records in splits.items():
        contexts = {record["context"] for record in records}
        n_long = sum(len(c.split()) >= LONG_CONTEXT_MIN_WORDS for c in contexts)
        n_impossible = sum(record["is_impossible"] for record in records)
        lines.append(f"{split:<12}{len(records):>10}{len(contexts):>10}{len(records) - n_impossible:>12}"
                     f"{n_impossible:>14}{n_long:>10}")
    answerable, unanswerable = Counter(), Counter()
    for types in question_types.values():
        for attr, reason in types:
            (unanswerable if reason else answerable)[attr] += 1
    lines += ["", f"{'question type':<26}{'answerable':>12}{'unanswerable':>14}"]
    for attr in sorted(answerable.keys() | unanswerable.keys()):
        lines.append(f"{attr:<26}{answerable[attr]:>12}{unanswerable[attr]:>14}")
    reasons = Counter(reason for types in question_types.values() for _, reason in types if reason)
    if reasons:
        lines.append("unanswerable by reason: " + ", ".join(f"{r}={n}" for r, n in sorted(reasons.items())))
    total = sum(len(records) for records in splits.values())
    lines.append(f"\n{total} records in {seconds:.2f} s ({total / max(seconds, 1e-9):,.0f} records/s)")
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Generate deterministic SQuAD-format mock QA data for a domain.")
    parser.add_argument("--domain", default="equipment_manual",
                        help="Built-in domain name (see --list_domains) or path to a JSON/YAML spec file.")
    parser.add_argument("--list_domains", action="store_true", help="List the built-in domains and exit.")
    parser.add_argument("--output_dir", default="data/mock", help="Directory for {split}.json / {split}.jsonl.")
    for split in DEFAULT_SIZES:
        parser.add_argument(f"--{split}_size", type=int, default=DEFAULT_SIZES[split],
                            help=f"Questions in the {split} split (0 skips it; default {DEFAULT_SIZES[split]}).")
    parser.add_argument("--impossible_ratio", type=float, default=0.0,
                        help="Share of unanswerable questions, 0-1 (0 for SQuAD v1-style data, e.g. 0.33 for v2).")
    parser.add_argument("--long_context_ratio", type=float, default=0.1,
                        help=f"Share of contexts padded to >= {LONG_CONTEXT_MIN_WORDS} words (> 384 tokens).")
    parser.add_argument("--min_facts", type=int, default=4, help="Fewest fact sentences in a normal context.")
    parser.add_argument("--max_facts", type=int, default=8, help="Most fact sentences in a normal context.")
    parser.add_argument("--format", choices=FORMATS, default="json",
                        help="json: {version, data: [flat records]}; jsonl: one flat record per line; "
                             "squad: official nested articles/paragraphs/qas layout.")
    parser.add_argument("--seed", type=int, default=42, help="Random seed; same seed and options give identical files.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 0 on success, 2 on a bad domain spec or option."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.list_domains:
        for name, spec in BUILTIN_DOMAINS.items():
            print(f"{name:<18} {spec['description']}")
        return 0
    sizes = {split: getattr(args, f"{split}_size") for split in DEFAULT_SIZES if getattr(args, f"{split}_size")}
    try:
        started = time.perf_counter()
        spec, splits, types = _generate(args.domain, sizes, args.seed, args.impossible_ratio,
                                        args.long_context_ratio, args.min_facts, args.max_facts)
        seconds = time.perf_counter() - started
        paths = write_dataset(splits, args.output_dir, args.format, spec["name"])
    except ValueError as err:
        logger.error("%s", err)
        return 2
    print(summarize(splits, types, seconds))
    for split, path in paths.items():
        logger.info("wrote %d %s records to %s", len(splits[split]), split, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
