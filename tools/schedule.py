#!/usr/bin/env python3
"""Rewrite index.md's schedule and config.yaml's episode list from the episodes' front matter.

    python tools/schedule.py

Run it after adding an episode or changing an episode's ``teaching``/``exercises`` minutes;
tests/test_episodes.py checks that the schedule adds up and matches the front matter.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent

#: After which episode (by its two-digit number) a break comes: its name and its minutes.
BREAKS: Dict[str, Tuple[str, int]] = {
    "02": ("Break", 15),
    "04": ("Break", 10),
    "05": ("Lunch, or the end of a half-day workshop", 60),
    "06": ("Break", 10),
    "07": ("Break", 15),
}

INTRO = ("The times are from the start of the day: the minutes are what each episode takes with "
         "learners typing along and doing every challenge. Breaks are in italics.\n\n")
HALVES = ("A half-day workshop covers episodes 1 to 5, with two breaks. Episodes 6 to 9 make it a "
          "full day, or a follow-up session of their own: they build on episodes 1 to 3.\n\n")


def clock(minutes: int) -> str:
    """``75`` -> ``"1:15"``."""
    return f"{minutes // 60}:{minutes % 60:02d}"


def front_matter(episode: Path) -> Dict[str, str]:
    head = episode.read_text().split("\n---", 1)[0]
    return {key.strip(): value.strip().strip("'\"") for key, value in
            (line.split(":", 1) for line in head.splitlines() if ":" in line)}


def schedule_table(episodes: List[Path]) -> str:
    rows: List[str] = []
    now = teaching = exercises = 0
    for episode in episodes:
        fields = front_matter(episode)
        teach, exercise = int(fields["teaching"]), int(fields["exercises"])
        rows.append(f"| {clock(now)} | [{int(episode.name[:2])}. {fields['title']}](episodes/{episode.name}) "
                    f"| {teach} | {exercise} | {teach + exercise} min |")
        now += teach + exercise
        teaching += teach
        exercises += exercise
        if episode.name[:2] in BREAKS and episode != episodes[-1]:
            name, minutes = BREAKS[episode.name[:2]]
            rows.append(f"| {clock(now)} | *{name}* | | | {minutes} min |")
            now += minutes
    rows.append(f"| {clock(now)} | Finish | | | |")
    return "\n".join(["| start | episode | teaching | exercises | total |", "|---:|---|---:|---:|---:|", *rows,
                      f"| | **total** | {teaching} | {exercises} | **{clock(teaching + exercises)}** "
                      f"of teaching and exercises |"])


def main() -> str:
    episodes = sorted((ROOT / "episodes").glob("[0-9]*.md"))
    table = schedule_table(episodes)
    index_path = ROOT / "index.md"
    index = index_path.read_text()
    start, end = index.index("## Schedule"), index.index("## Who is this for?")
    index_path.write_text(index[:start] + "## Schedule\n\n" + INTRO + table + "\n\n" + HALVES + index[end:])
    config_path = ROOT / "config.yaml"
    listing = "episodes:\n" + "".join(f"- {episode.name}\n" for episode in episodes)
    config_path.write_text(re.sub(r"episodes:\n(- .*\n)+", listing, config_path.read_text(), count=1))
    notes_path = ROOT / "instructors" / "instructor-notes.md"
    notes = notes_path.read_text()
    for episode in episodes:                 # the minutes in the instructor notes' timing table
        fields = front_matter(episode)
        notes = re.sub(rf"^(\| {int(episode.name[:2])}\. [^|\n]*\| )\d+ \| \d+ \|",
                       rf"\g<1>{fields['teaching']} | {fields['exercises']} |", notes, flags=re.M)
    notes_path.write_text(notes)
    return table


if __name__ == "__main__":
    print(main())
