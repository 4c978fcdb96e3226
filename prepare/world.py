"""
The fixed-world corpus (design note 004, "Separation of Reason and Knowledge"), generated from a seed
with no download. Unlike prepare/facts.py, whose people are invented afresh for every document, this
world has N people with fixed attributes, so there is something to memorize, to forget and to look up.

One token per word, and every name part and attribute value is one word, so every answer is one token:

    where does Voka Tusel live ? Dashmur .                                      closed-book
    Mibe Rano lives in Tulvek , works as baker , keeps owl .                    open-book: the facts block,
    Voka Tusel lives in Pelkor , works as smith , keeps fox .                     then questions on it
    what does Mibe Rano keep ? owl .

Documents come in three kinds, mixed in the proportions given:
  closed-book     questions about people of the world, no facts: answering needs memory. These
                  documents start with a question, every other kind with a fact.
  open-book       a facts block, then questions on it. In train the people are fresh names (with
                  random attributes, so only reading answers them) or people of the world (true facts).
  counterfactual  an open-book document where one person of the world has facts that contradict the
                  world, asked about: the answer follows the context, not memory.
Held-out people have fixed attributes too, but appear only in val, and only open-book. Names are
two words (a first and a last name, from disjoint lists), so a held-out name is a new combination of
words that training has seen; no held-out name appears in the train split.

Beside the bins it writes what the metrics and the arms of tools/knowledge.py read:
  world.json       the people, their attributes, the held-out people, and the "updates": for a group
                   of people of the world, new attributes that contradict memory (the counterfactuals)
  questions.jsonl  val questions, one per line: {kind, entity, facts, prompt, answer, candidates,
                   memory, other}, kind closed_book (group A of the world, no facts), open_book_new (held-out
                   people, facts given) or counterfactual (group B, the updated facts given; memory is
                   the world's answer); other is the answer of the facts block's other person
  library.jsonl    the external store: one facts line per person as the world is now (held-out people,
                   and group B's updated facts), for retrieval and LoRA
forget_split splits the people of the world into a forget set and a retain set (selective forgetting,
helpers/knowledge.py); it changes nothing written here. make_world(new_people=n) and capacity_documents
draw people met only later, and closed-book documents about them (tools/knowledge.py capacity).
paraphrases and lora_facts_documents state a person's facts in other forms (orders of the facts, one
sentence or one per fact) for a LoRA that carries facts (tools/knowledge.py lora_facts).

--echo=True writes every fact in the form of its question, "city of Voka Tusel Pelkor .", and asks "city of
Voka Tusel" -> "Pelkor": the question is the start of its fact, so answering is finding it in the block and
copying the next word (docs/knowledge.md, "A recipe that binds").

    python prepare/world.py                                  # data/world: 300 people, 100 held out
    python prepare/world.py --people=2000 --held_out=200 --out data/world_big
    python prepare/world.py --echo=True --out data/world_echo
"""

import argparse
import itertools
import json
import os
import random
import sys

if __name__ == "__main__":  # run as a script: put the repository root on sys.path (_root.py)
    import _root  # noqa: F401
from prepare.common import WordTokenizer, default_out_dir, write_dataset
from prepare.facts import CONSONANTS, JOBS, VOWELS

CITIES = ["Dashmur", "Tulvek", "Pelkor", "Varnis", "Odrin", "Kelsa", "Morvik", "Zanet", "Ibral", "Fennor",
          "Gostra", "Halvin", "Ruskal", "Semble", "Tarvo", "Ulmen"]
PETS = ["owl", "fox", "cat", "dog", "goat", "crow", "hare", "frog"]
# (attribute, question, values): every question is 5 words before its name-sized gap, 6 tokens in all
ATTRIBUTES = (("city", "where does {} live ?", CITIES), ("job", "what does {} do ?", JOBS),
              ("pet", "what does {} keep ?", PETS))
TEMPLATE = ["lives", "in", ",", "works", "as", "keeps", ".", "where", "what", "does", "live", "do", "keep", "?"]
QUESTION_WORDS = ("where", "what")  # a closed-book document starts with one of these
# --echo: every fact is "<attribute> of <name> <value> ." and its question is the same words before the value
# ("pet of Voka Tusel" -> "fox"), so a question repeats the start of its fact; these words join the vocabulary
ECHO_WORDS = ["city", "job", "pet", "of"]


def name_parts(n):
    """n first names and n last names, two disjoint lists of invented words (the same for every seed)."""
    rng, words = random.Random(4), set()
    while len(words) < 2 * n:
        words.add("".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(2)).capitalize()
                  + rng.choice(["", *CONSONANTS]))
    words = sorted(words)
    rng.shuffle(words)
    return words[:n], words[n:]


def vocabulary(n_parts, echo=False):
    first, last = name_parts(n_parts)
    return first + last + CITIES + JOBS + PETS + TEMPLATE + (ECHO_WORDS if echo else []) + ["<eot>"]


def facts_line(name, a):
    return f"{name} lives in {a['city']} , works as {a['job']} , keeps {a['pet']} ."


# the forms of a paraphrase (statement): the three facts in each order, in one sentence or one sentence per fact
# with the whole name each time (the permutation and full-name augmentations of Allen-Zhu and Li, 2309.14316);
# FORMS[0] is facts_line's. Every form uses only the words above, so the vocabulary does not change.
FORMS = [(order, apart) for apart in (False, True) for order in itertools.permutations(range(len(ATTRIBUTES)))]


def statement(name, a, order=(0, 1, 2), apart=False, echo=False):
    """name's facts as one paraphrase: its clauses in order (indices of ATTRIBUTES), in one sentence, or apart:
    one sentence per fact ("Voka Tusel keeps fox . Voka Tusel lives in Pelkor . ..."), or echo: one sentence per
    fact in the form its question repeats ("city of Voka Tusel Pelkor . job of Voka Tusel smith . ...")."""
    if echo:
        return " ".join(f"{question(name, ATTRIBUTES[i][0], echo)[0]} {a[ATTRIBUTES[i][0]]} ." for i in order)
    clauses = {"city": f"lives in {a['city']}", "job": f"works as {a['job']}", "pet": f"keeps {a['pet']}"}
    parts = [clauses[ATTRIBUTES[i][0]] for i in order]
    return " ".join(f"{name} {p} ." for p in parts) if apart else f"{name} {' , '.join(parts)} ."


def paraphrases(name, a, n, rng):
    """n different paraphrases of name's facts: n forms of FORMS drawn without replacement."""
    return [statement(name, a, *FORMS[i]) for i in rng.sample(range(len(FORMS)), n)]


def lora_facts_documents(w, targets, qa_people, n_paraphrases, qa_share, seed, tok):
    """(ids, 0, n_bytes) of the documents a LoRA that carries facts trains on (tools/knowledge.py lora_facts),
    shuffled: n_paraphrases paraphrases of the facts of every person of targets and of qa_people, one document
    each, and closed-book documents of four questions about qa_people only, qa_share of all the documents.
    The targets get statements only: no question about them is ever trained on."""
    rng = random.Random(seed)
    docs = [p for n in [*targets, *qa_people] for p in paraphrases(n, w["attributes"][n], n_paraphrases, rng)]
    n_qa = round(qa_share / (1 - qa_share) * len(docs)) if qa_people else 0
    docs += [" ".join(qa(p, w["attributes"][p], rng) for p in rng.choices(qa_people, k=4)) for _ in range(n_qa)]
    rng.shuffle(docs)
    for text in docs:
        yield tok.encode(text), 0, len(text)


def question(name, attr, echo=False):
    """(prompt, candidates) of the question about attribute attr of name."""
    _, q, values = next(x for x in ATTRIBUTES if x[0] == attr)
    return (f"{attr} of {name}" if echo else q.format(name)), values


def random_attributes(rng, avoid=None):
    """Attributes drawn at random; with avoid, each differs from avoid's (a counterfactual)."""
    return {k: rng.choice([v for v in values if not avoid or v != avoid[k]]) for k, _, values in ATTRIBUTES}


def make_world(seed, people, held_out, n_parts, group_size, new_people=0):
    """{people, held_out, attributes, group_a, group_b, updates}: the fixed world drawn from seed.
    new_people > 0 adds new_people: people met only after the base's training (tools/knowledge.py capacity),
    drawn after everything else with the same generator, so the rest of the world is the same as without
    them. Their names are the last of the fresh names (still fresh in the base's data, with random facts)."""
    first, last = name_parts(n_parts)
    names = [f"{f} {la}" for f in first for la in last]
    if people + held_out > len(names) // 2:
        raise SystemExit(f"error: {people} + {held_out} people need more names: raise --name_parts "
                         f"({n_parts} gives {len(names)} names, half of them left for fresh names)")
    rng = random.Random(seed)
    rng.shuffle(names)
    world, held = names[:people], names[people:people + held_out]
    attributes = {n: random_attributes(rng) for n in world + held}
    order = rng.sample(world, len(world))
    group_a, group_b = order[:group_size], order[group_size:2 * group_size]
    updates = {n: random_attributes(rng, avoid=attributes[n]) for n in group_b}
    out = {"people": world, "held_out": held, "fresh": names[people + held_out:], "attributes": attributes,
           "group_a": group_a, "group_b": group_b, "updates": updates}
    if new_people:  # drawn last: nothing above depends on them
        if new_people > len(names) - people - held_out:
            raise SystemExit(f"error: {new_people} new people need more names: lower it or raise --name_parts")
        out["new_people"] = names[len(names) - new_people:]
        attributes.update({n: random_attributes(rng) for n in out["new_people"]})
    return out


def forget_split(w, fraction, seed):
    """(forget, retain): the people of the world split for selective forgetting, each in world order. The
    forget set, round(fraction x people) of them, counts as available outside the model (the forgetting
    loss pushes it out); the retain set is not. Drawn from the world's seed (seed + 4), and nested: the
    forget set of a smaller fraction is part of a larger one's. fraction 1 forgets everyone."""
    order = random.Random(seed + 4).sample(w["people"], len(w["people"]))
    chosen = set(order[:round(fraction * len(order))])
    return [n for n in w["people"] if n in chosen], [n for n in w["people"] if n not in chosen]


def capacity_documents(w, n, seed, retain, new_share, tok, n_questions=4):
    """(ids, prefix length, n_bytes) of n closed-book documents for learning the new people: each question
    is about a new person with probability new_share, else about a person of retain (rehearsal)."""
    rng = random.Random(seed)
    for _ in range(n):
        people = [rng.choice(w["new_people"] if rng.random() < new_share else retain) for _ in range(n_questions)]
        text = " ".join(qa(p, w["attributes"][p], rng) for p in people)
        yield tok.encode(text), 0, len(text)


def qa(name, attrs, rng, echo=False):
    attr = rng.choice([a for a, _, _ in ATTRIBUTES])
    return f"{question(name, attr, echo)[0]} {attrs[attr]} ."


def make_document(rng, w, kind, split, n_questions=3, open_people=(2, 3), apart=False, echo=False):
    """(text, prefix text) of one document of the given kind; prefix is the facts block. An open-book or
    counterfactual document states the facts of open_people (min, max) people and asks n_questions; apart
    and echo: the forms of statement, instead of facts_line's one sentence per person."""
    if kind == "closed":
        people = [rng.choice(w["people"]) for _ in range(n_questions + 1)]
        return " ".join(qa(n, w["attributes"][n], rng, echo) for n in people), ""
    k = rng.randint(*open_people)
    pool = w["held_out"] if split == "val" else w["fresh"]
    people = {}
    while len(people) < k:
        n = rng.choice(pool)
        if split == "train" and rng.random() < 0.3:  # a person of the world, with the true facts
            n = rng.choice(w["people"])
        people[n] = w["attributes"][n] if n in w["attributes"] else random_attributes(rng)
    asked = list(people)
    if kind == "counterfactual":  # one person of the world, facts against memory, asked first
        n = rng.choice(w["people"])
        people.pop(n, None)
        people[n] = random_attributes(rng, avoid=w["attributes"][n])
        asked = [n] + [rng.choice(list(people)) for _ in range(n_questions - 1)]
    else:
        asked = [rng.choice(asked) for _ in range(n_questions)]
    names = list(people)
    rng.shuffle(names)
    facts = " ".join(statement(n, people[n], apart=apart, echo=echo) for n in names)
    return facts + " " + " ".join(qa(n, people[n], rng, echo) for n in asked), facts


def documents(w, n, seed, split, mix, tok, n_questions=3, open_people=(2, 3), apart=False, echo=False):
    """(ids, prefix length, n_bytes) of n documents; mix: shares of closed, open, counterfactual."""
    rng = random.Random(seed)
    for _ in range(n):
        kind = rng.choices(("closed", "open", "counterfactual"), weights=mix)[0]
        text, prefix = make_document(rng, w, kind, split, n_questions, open_people, apart, echo)
        yield tok.encode(text), len(tok.encode(prefix)), len(text)


def document_shape(gen):
    """(mix, keys of documents()) from the script's options as strings: parsed arguments, or meta.json's
    "generator" (options an older one lacks take their defaults). ValueError says which option is wrong."""
    try:
        mix = [float(x) for x in str(gen.get("mix", "0.45,0.4,0.15")).split(",")]
    except ValueError:
        mix = []
    if len(mix) != 3 or min(mix) < 0 or sum(mix) <= 0:
        raise ValueError(f"--mix must be three shares >= 0, not all 0, got {gen.get('mix')}")
    try:
        open_people = tuple(int(x) for x in str(gen.get("open_people", "2,3")).split(","))
    except ValueError:
        open_people = ()
    n_questions = gen.get("questions", 3)
    if len(open_people) != 2 or not 2 <= open_people[0] <= open_people[1] or n_questions < 1:
        raise ValueError(f"--open_people must be min,max with 2 <= min <= max (got {gen.get('open_people')}) and "
                         f"--questions >= 1 (got {n_questions})")
    if gen.get("facts_apart") == "True" and gen.get("echo") == "True":
        raise ValueError("--facts_apart and --echo are two forms of the facts: choose one")
    return mix, dict(n_questions=n_questions, open_people=open_people, apart=gen.get("facts_apart") == "True",
                     echo=gen.get("echo") == "True")


def val_questions(w, n, seed, apart=False, echo=False):
    """The question sets of the metrics: n per kind, each with its facts block (two people's facts)."""
    rng = random.Random(seed)
    attrs, out = [a for a, _, _ in ATTRIBUTES], []
    now = {**w["attributes"], **w["updates"]}  # the world as the external store has it

    def add(kind, name, facts_of, memory=None):
        attr = rng.choice(attrs)
        prompt, candidates = question(name, attr, echo)
        other = rng.choice([m for m in facts_of if m != name])
        lines = [statement(n, facts_of[n], apart=apart, echo=echo) for n in (name, other)]
        rng.shuffle(lines)
        out.append({"kind": kind, "entity": name, "attribute": attr, "facts": " ".join(lines), "prompt": prompt,
                    "answer": facts_of[name][attr], "candidates": candidates,
                    "memory": memory[attr] if memory else None, "other": facts_of[other][attr]})

    for _ in range(n):
        add("closed_book", rng.choice(w["group_a"]), w["attributes"])
    for _ in range(n):
        add("open_book_new", rng.choice(w["held_out"]), {h: w["attributes"][h] for h in w["held_out"]})
    for _ in range(n):
        name = rng.choice(w["group_b"])
        add("counterfactual", name, {name: now[name], **{h: now[h] for h in w["held_out"]}}, w["attributes"][name])
    return out


def write_jsonl(path, rows):
    with open(path + ".tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    os.replace(path + ".tmp", path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, default=300, help="people of the world (memorized)")
    p.add_argument("--held_out", type=int, default=100, help="held-out people: only in val, only open-book")
    p.add_argument("--name_parts", type=int, default=40, help="first names and last names (each); names are pairs")
    p.add_argument("--group_size", type=int, default=100, help="people in group A (closed_book) and in B (updates)")
    p.add_argument("--train_docs", type=int, default=40000, help="number of training documents")
    p.add_argument("--val_docs", type=int, default=1000, help="number of validation documents")
    p.add_argument("--mix", default="0.45,0.4,0.15", help="shares of closed-book, open-book, counterfactual")
    p.add_argument("--open_people", default="2,3",
                   help="min,max people whose facts an open-book or counterfactual document states")
    p.add_argument("--questions", type=int, default=3, help="questions per open-book document (closed-book ones ask one more)")
    p.add_argument("--facts_apart", default="False", choices=("False", "True"),
                   help="True: facts blocks and the store state one sentence per fact, each with the whole name")
    p.add_argument("--echo", default="False", choices=("False", "True"),
                   help="True: every fact is '<attribute> of <name> <value> .' and its question the same words "
                        "before the value, so answering is finding the question's words in the facts")
    p.add_argument("--eval_questions", type=int, default=200, help="val questions per metric")
    p.add_argument("--seed", type=int, default=0, help="draws the world; train uses seed + 1, val seed + 2")
    p.add_argument("--out", default=None, help="output directory (default data/world)")
    args = p.parse_args(argv)
    try:
        mix, shape = document_shape(vars(args))
    except ValueError as e:
        sys.exit(f"error: {e}")
    if 2 * args.group_size > args.people or args.held_out < 2 or args.group_size < 2:
        sys.exit("error: --group_size must be >= 2 with 2 * group_size <= --people, and --held_out >= 2")

    w = make_world(args.seed, args.people, args.held_out, args.name_parts, args.group_size)
    tok = WordTokenizer(vocabulary(args.name_parts, shape["echo"]))
    out = args.out or default_out_dir("world")
    apart, echo = shape["apart"], shape["echo"]
    write_dataset(out, {"train": documents(w, args.train_docs, args.seed + 1, "train", mix, tok, **shape),
                        "val": documents(w, args.val_docs, args.seed + 2, "val", mix, tok, **shape)},
                  tok, "world", extra_meta={"generator": {k: v for k, v in vars(args).items() if k != "out"}})
    now = {**w["attributes"], **w["updates"]}
    world = {k: v for k, v in w.items() if k != "fresh"} | ({"echo": True} if echo else {})  # the form, for its readers
    with open(os.path.join(out, ".world.json.tmp"), "w") as f:
        json.dump(world, f)
    os.replace(os.path.join(out, ".world.json.tmp"), os.path.join(out, "world.json"))
    write_jsonl(os.path.join(out, "questions.jsonl"), val_questions(w, args.eval_questions, args.seed + 3, apart, echo))
    write_jsonl(os.path.join(out, "library.jsonl"), [{"entity": n, "text": statement(n, now[n], apart=apart, echo=echo)}
                                                     for n in w["people"] + w["held_out"]])
    print(f"{out}/questions.jsonl: {3 * args.eval_questions} val questions; library.jsonl: "
          f"{len(w['people']) + len(w['held_out'])} facts lines")


if __name__ == "__main__":
    main()
