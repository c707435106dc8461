"""Write benchmarks/data/ptb_analogies.txt: analogy questions answerable in the Penn
Treebank's 10,000-word vocabulary, in the format of the public Google analogy set
(``: section`` lines, then ``a b c d`` per line, meaning ``a : b = c : d``).

The word pairs below are written by hand from general knowledge (the world as the
1989 Wall Street Journal saw it: Bonn is West Germany's capital). A pair is kept
when both words occur in ``ptb.train.txt`` (which is lower case, with rare words
as ``<unk>``); a section keeps its ``--max-pairs`` pairs whose rarer word is the
most frequent, so that no section is made of words seen a handful of times (the
pairs of the book's four analogies are always kept). Each
ordered pair of kept pairs ``(a, b), (c, d)`` gives the question ``a b c d`` when
its four words differ (``france franc`` with ``belgium franc`` asks nothing).

    python benchmarks/make_ptb_analogies.py [--ptb DIR] [--max-pairs 20] [--out FILE]
"""

from __future__ import annotations

import argparse
from collections import Counter
from itertools import permutations
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "data" / "ptb_analogies.txt"
DEFAULT_PTB = HERE.parents[1] / "shared" / "datasets" / "ptb"

# the book's analogies king:man = queen:woman, take:took = go:went, car:cars =
# child:children and good:better = bad:worse: kept whatever their frequency
BOOK_PAIRS = {("man", "woman"), ("king", "queen"), ("take", "took"), ("go", "went"),
              ("car", "cars"), ("child", "children"), ("good", "better"), ("bad", "worse")}

# section -> "a b, a b, ..." (pairs that PTB lacks are dropped when the file is made)
SECTIONS = {
    "gender": """man woman, king queen, he she, his her, him her, himself herself,
        father mother, son daughter, brother sister, husband wife, boy girl, men women,
        mr. mrs., sons daughters, fathers mothers, brothers sisters, boys girls, male female,
        actor actress, spokesman spokeswoman, prince princess, uncle aunt, kings queens""",
    "plural-nouns": """car cars, child children, man men, woman women, person people,
        year years, company companies, bank banks, price prices, share shares, day days,
        month months, week weeks, house houses, market markets, stock stocks, bond bonds,
        investor investors, analyst analysts, country countries, city cities, state states,
        computer computers, plant plants, product products, job jobs, worker workers,
        director directors, officer officers, executive executives, program programs,
        issue issues, problem problems, rate rates, contract contracts, loan loans,
        store stores, truck trucks, plane planes, airline airlines, unit units, firm firms,
        group groups, family families, dollar dollars, point points, case cases, law laws,
        court courts, member members, office offices, school schools, student students,
        machine machines, drug drugs, order orders, lawyer lawyers, partner partners,
        buyer buyers, dealer dealers, trader traders, customer customers, employee employees,
        union unions, factory factories, network networks, system systems, question questions,
        official officials, leader leaders, party parties, vote votes, deal deals, plan plans,
        report reports, tax taxes, cost costs, profit profits, loss losses, asset assets""",
    "past-tense": """take took, go went, say said, make made, come came, give gave, see saw,
        know knew, get got, find found, think thought, tell told, become became, leave left,
        feel felt, bring brought, begin began, keep kept, hold held, write wrote, stand stood,
        hear heard, mean meant, meet met, run ran, pay paid, sit sat, speak spoke, lead led,
        grow grew, lose lost, fall fell, send sent, build built, understand understood,
        draw drew, break broke, spend spent, rise rose, drive drove, buy bought, wear wore,
        choose chose, sell sold, win won, fight fought, throw threw, catch caught, teach taught,
        fly flew, sink sank, seek sought, shake shook, ride rode, strike struck, slide slid,
        jump jumped, increase increased, decline declined, report reported, agree agreed,
        expect expected, announce announced, close closed, reach reached, rally rallied,
        drop dropped, gain gained, climb climbed, trade traded, offer offered, add added,
        receive received, include included, acquire acquired, approve approved, file filed,
        reject rejected, boost boosted""",
    "comparative": """good better, bad worse, big bigger, small smaller, large larger,
        high higher, low lower, strong stronger, weak weaker, long longer, short shorter,
        fast faster, slow slower, old older, young younger, new newer, easy easier,
        hard harder, early earlier, late later, cheap cheaper, rich richer, tough tougher,
        great greater, wide wider, deep deeper, heavy heavier, close closer, safe safer,
        tight tighter, broad broader, soft softer, sharp sharper, firm firmer, poor poorer,
        few fewer, far further, quick quicker, clear clearer, hot hotter, warm warmer""",
    "superlative": """good best, bad worst, big biggest, small smallest, large largest,
        high highest, low lowest, strong strongest, weak weakest, long longest, fast fastest,
        old oldest, young youngest, new newest, early earliest, late latest, great greatest,
        heavy heaviest, sharp sharpest, cheap cheapest, rich richest, tough toughest,
        wide widest, close closest""",
    "opposite": """up down, buy sell, rise fall, increase decrease, high low, good bad,
        big small, long short, early late, open close, win lose, yes no, in out,
        before after, more less, profit loss, strong weak, rich poor, old new, north south,
        east west, top bottom, import export, bull bear, hot cold, best worst, first last,
        inside outside, above below, over under, positive negative, public private,
        domestic foreign, buyer seller, borrow lend, winner loser, day night, asset liability""",
    "negative-prefix": """possible impossible, likely unlikely, legal illegal, able unable,
        profitable unprofitable, fair unfair, known unknown, usual unusual, certain uncertain,
        friendly unfriendly, necessary unnecessary, expected unexpected, changed unchanged,
        available unavailable, clear unclear, willing unwilling, successful unsuccessful,
        stable unstable, secured unsecured, popular unpopular, identified unidentified,
        authorized unauthorized, related unrelated, common uncommon, disclosed undisclosed,
        appropriate inappropriate, adequate inadequate, efficient inefficient, direct indirect,
        formal informal, accurate inaccurate, responsible irresponsible, relevant irrelevant,
        proper improper""",
    "adjective-adverb": """quick quickly, slow slowly, sharp sharply, strong strongly,
        clear clearly, recent recently, usual usually, final finally, current currently,
        real really, actual actually, easy easily, heavy heavily, close closely,
        direct directly, immediate immediately, exact exactly, general generally,
        particular particularly, previous previously, significant significantly,
        substantial substantially, slight slightly, modest modestly, rapid rapidly,
        complete completely, full fully, near nearly, similar similarly, separate separately,
        initial initially, official officially, public publicly, apparent apparently,
        effective effectively, total totally, rough roughly, broad broadly, brief briefly,
        careful carefully, eventual eventually, original originally, primary primarily,
        relative relatively, extreme extremely, serious seriously, strict strictly,
        unusual unusually, dramatic dramatically, sudden suddenly, traditional traditionally,
        typical typically, wide widely, sole solely, firm firmly, moderate moderately,
        bad badly, considerable considerably, aggressive aggressively, private privately,
        personal personally, necessary necessarily, obvious obviously, open openly,
        new newly, quiet quietly, partial partially""",
    "present-participle": """go going, make making, take taking, buy buying, sell selling,
        pay paying, say saying, run running, get getting, come coming, look looking,
        try trying, work working, trade trading, seek seeking, plan planning, build building,
        grow growing, give giving, rise rising, fall falling, offer offering, reduce reducing,
        increase increasing, raise raising, cut cutting, keep keeping, hold holding,
        use using, spend spending, move moving, win winning, lose losing, begin beginning,
        continue continuing, expect expecting, help helping, lead leading, become becoming,
        operate operating, provide providing, produce producing, manage managing,
        invest investing, develop developing, borrow borrowing, lend lending, write writing,
        talk talking, drive driving, close closing, open opening, play playing,
        change changing, sign signing""",
    "third-person": """say says, make makes, take takes, go goes, buy buys, sell sells,
        pay pays, get gets, come comes, see sees, want wants, include includes,
        expect expects, think thinks, believe believes, need needs, know knows,
        become becomes, plan plans, hold holds, own owns, run runs, give gives, seem seems,
        remain remains, continue continues, provide provides, offer offers, use uses,
        lead leads, keep keeps, tend tends, mean means, allow allows, require requires,
        produce produces, represent represents, reflect reflects, add adds, help helps,
        operate operates, manage manages, control controls, raise raises""",
    "nationality": """japan japanese, china chinese, france french, germany german,
        britain british, italy italian, spain spanish, canada canadian, mexico mexican,
        russia russian, america american, india indian, israel israeli, brazil brazilian,
        australia australian, sweden swedish, switzerland swiss, korea korean, ireland irish,
        poland polish, netherlands dutch, egypt egyptian, iran iranian, iraq iraqi,
        greece greek, turkey turkish, norway norwegian, denmark danish, taiwan taiwanese,
        cuba cuban, vietnam vietnamese, belgium belgian, finland finnish,
        philippines philippine, africa african, europe european, asia asian,
        nicaragua nicaraguan, panama panamanian, colombia colombian, portugal portuguese""",
    "capital": """japan tokyo, china beijing, france paris, britain london, germany bonn,
        italy rome, spain madrid, russia moscow, egypt cairo, sweden stockholm,
        belgium brussels, poland warsaw, taiwan taipei, korea seoul, philippines manila,
        netherlands amsterdam, nicaragua managua, canada ottawa, india delhi, iran tehran,
        iraq baghdad, greece athens, norway oslo, denmark copenhagen, austria vienna,
        hungary budapest, thailand bangkok, cuba havana, lebanon beirut, ireland dublin,
        portugal lisbon, finland helsinki, turkey ankara, australia canberra""",
    "currency": """japan yen, britain pound, germany mark, france franc, switzerland franc,
        belgium franc, russia ruble, soviet ruble, korea won, u.s. dollar, canada dollar,
        australia dollar, taiwan dollar, italy lira, mexico peso, india rupee, china yuan,
        spain peseta, israel shekel, netherlands guilder, sweden krona""",
    "city-state": """chicago illinois, boston massachusetts, houston texas, dallas texas,
        austin texas, detroit michigan, atlanta georgia, miami florida, tampa florida,
        seattle washington, denver colorado, phoenix arizona, philadelphia pennsylvania,
        pittsburgh pennsylvania, cleveland ohio, cincinnati ohio, columbus ohio,
        baltimore maryland, minneapolis minnesota, milwaukee wisconsin, madison wisconsin,
        sacramento california, angeles california, francisco california, diego california,
        oakland california, portland oregon, nashville tennessee, memphis tennessee,
        louisville kentucky, richmond virginia, charlotte carolina, orleans louisiana,
        honolulu hawaii, omaha nebraska, hartford connecticut, indianapolis indiana,
        vegas nevada, birmingham alabama, wilmington delaware""",
}


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``"a b, c d"`` -> ``[("a", "b"), ("c", "d")]``, duplicates dropped, in order."""
    pairs = []
    for item in text.split(","):
        words = item.split()
        if len(words) != 2:
            raise ValueError(f"make_ptb_analogies: expected a pair of words, got {item!r}")
        if tuple(words) not in pairs:
            pairs.append(tuple(words))
    return pairs


def kept_pairs(pairs, counts: Counter, max_pairs: int):
    """The pairs whose words both occur, at most ``max_pairs`` of them: the book's
    pairs, then those whose rarer word is the most frequent (ties in the
    hand-written order)."""
    present = [p for p in pairs if p[0] != p[1] and all(counts[w] > 0 for w in p)]
    present.sort(key=lambda p: (p not in BOOK_PAIRS, -min(counts[w] for w in p)))  # stable
    return present[:max_pairs]


def questions(pairs):
    """``a b c d`` for every ordered pair of pairs with four different words."""
    return [(a, b, c, d) for (a, b), (c, d) in permutations(pairs, 2)
            if len({a, b, c, d}) == 4]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ptb", type=Path, default=DEFAULT_PTB,
                    help="folder holding ptb.train.txt")
    ap.add_argument("--max-pairs", type=int, default=20)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    train = args.ptb / "ptb.train.txt"
    if not train.exists():
        ap.error(f"argument --ptb: expected a folder holding ptb.train.txt, got {args.ptb}")
    counts = Counter(train.read_text(encoding="utf-8").split())
    lines, total = [], 0
    for section, text in SECTIONS.items():
        pairs = kept_pairs(parse_pairs(text), counts, args.max_pairs)
        qs = questions(pairs)
        total += len(qs)
        print(f"{section:20s} {len(pairs):3d} pairs {len(qs):5d} questions")
        lines.append(f": {section}")
        lines.extend(" ".join(q) for q in qs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{total} questions in {len(SECTIONS)} sections -> {args.out}")


if __name__ == "__main__":
    main()
