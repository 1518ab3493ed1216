# The front door. Every target calls `python lesson.py ...`, which Windows learners without make
# can run themselves. Each target is self-sufficient: it creates .venv and installs what it needs.
PYTHON ?= python3

.PHONY: help lab test check site mirror setup notebooks check-notebooks outputs links preflight workbench

help:
	@$(PYTHON) lesson.py help

# Extra options for lesson.py, e.g. `make lab ARGS=--anyway` or `make setup ARGS=--dry-run`.
ARGS ?=

lab:            ## set up, then start JupyterLab on notebooks/ (ARGS=--anyway: even with data missing)
	$(PYTHON) lesson.py lab $(ARGS)

test:           ## set up for developers, then every test, on every core (offline)
	$(PYTHON) lesson.py test

check:          ## set up, then check line by line that this computer is ready for the lesson
	$(PYTHON) lesson.py check

site:           ## set up, then build the executed lesson as HTML in _site/
	$(PYTHON) lesson.py site

mirror:         ## write the lesson's images and weights to lesson-mirror/ for a USB stick
	$(PYTHON) lesson.py mirror

setup:          ## only create .venv, install, and fetch the lesson data (ARGS=--dry-run: print, run nothing)
	$(PYTHON) lesson.py setup $(ARGS)

notebooks:      ## regenerate notebooks/ from episodes/
	$(PYTHON) lesson.py notebooks

check-notebooks:  ## fail if notebooks/ and episodes/ disagree
	$(PYTHON) lesson.py notebooks --check

outputs:        ## write the marked cells' printouts and figures into the episodes (LESSON_MODEL=resnet50 before a workshop)
	$(PYTHON) lesson.py outputs $(ARGS)

links:          ## write every link to the lesson's public home from config.yaml's source (set it first)
	$(PYTHON) lesson.py links $(ARGS)

preflight:      ## instructors: check the lesson's claims against the model learners use (LESSON_MODEL)
	$(PYTHON) lesson.py preflight

workbench:      ## check the lesson with the Carpentries Workbench (R, sandpaper), then build it in site/docs/
	$(PYTHON) lesson.py workbench $(ARGS)
