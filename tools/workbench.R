# The Carpentries Workbench steps of `python lesson.py workbench`, one per call:
#
#   Rscript tools/workbench.R check [PACKAGE ...]   # "R 4.2.2", "pandoc 2.17.1.1", "sandpaper 0.20.2" ("-": missing)
#   Rscript tools/workbench.R install FILE.tar.gz ...  # source packages, in the order given
#   Rscript tools/workbench.R validate LESSON       # sandpaper::validate_lesson(headings = TRUE); status 1 on problems
#   Rscript tools/workbench.R build LESSON          # sandpaper::build_lesson(): the site lands in LESSON/site/docs/
#
# lesson.py says what to do when something is missing; this file only asks R.

args <- commandArgs(trailingOnly = TRUE)
step <- if (length(args)) args[[1]] else ""

installed_version <- function(package) {
  if (!requireNamespace(package, quietly = TRUE)) return("-")
  format(utils::packageVersion(package))
}

pandoc_version <- function() {
  # rmarkdown (a sandpaper dependency) finds pandoc the way sandpaper does; without it, PATH.
  if (requireNamespace("rmarkdown", quietly = TRUE)) {
    found <- rmarkdown::find_pandoc()$version
    return(if (found > "0") format(found) else "-")
  }
  pandoc <- Sys.which("pandoc")
  if (!nzchar(pandoc)) return("-")
  first <- suppressWarnings(system2(pandoc, "--version", stdout = TRUE, stderr = FALSE))[1]
  sub("^pandoc(\\.exe)?\\s+", "", first)
}

# The rows of one of validate_lesson()'s tables that fail a test pegboard reports (its *_tests
# name the columns; a test with an empty message is a summary of others).
failing_rows <- function(table, tests) {
  if (is.null(table) || !NROW(table)) return(0L)
  columns <- intersect(names(tests)[nzchar(tests)], names(table))
  if (!length(columns)) return(0L)
  failed <- !as.matrix(as.data.frame(table)[columns])
  sum(rowSums(failed, na.rm = TRUE) > 0)
}

validate <- function(path) {
  # validate_lesson() only reports; it returns the tables it reported from, and pegboard says
  # "There were errors in n/N ..." for each kind of problem. Either counts.
  summaries <- character()
  result <- withCallingHandlers(
    sandpaper::validate_lesson(path, headings = TRUE),
    message = function(m) {
      if (grepl("There were errors in", conditionMessage(m), fixed = TRUE)) {
        summaries <<- c(summaries, trimws(conditionMessage(m)))
      }
    }
  )
  problems <- failing_rows(result$headings, pegboard::heading_tests) +
    failing_rows(result$links, pegboard::link_tests) +
    failing_rows(result$divs, pegboard::div_tests)
  problems <- max(problems, length(summaries))
  cat(sprintf("workbench: validate_lesson(headings = TRUE) found %d problem%s\n",
              problems, if (problems == 1) "" else "s"))
  quit(status = if (problems > 0) 1L else 0L)
}

install <- function(files) {
  # The first library R may write to, else the user's own (created, as R itself offers to).
  writable <- Filter(function(lib) file.access(lib, 2) == 0, .libPaths())
  lib <- if (length(writable)) writable[[1]] else Sys.getenv("R_LIBS_USER")
  dir.create(lib, recursive = TRUE, showWarnings = FALSE)
  .libPaths(c(lib, .libPaths()))
  # One at a time, in lesson.py's order, so that each finds the packages it needs already there.
  # install.packages() only warns when one fails; lesson.py checks the versions afterwards.
  for (file in files) utils::install.packages(file, repos = NULL, type = "source", lib = lib)
  cat("workbench: installed into", lib, "\n")
}

if (step == "check") {
  cat("R", format(getRversion()), "\n")
  cat("pandoc", pandoc_version(), "\n")
  for (package in unique(c("sandpaper", args[-1]))) cat(package, installed_version(package), "\n")
} else if (step == "install") {
  install(args[-1])
} else if (step == "validate") {
  validate(args[[2]])
} else if (step == "build") {
  if (nzchar(Sys.getenv("LESSON_OFFLINE"))) {
    # cffr (CITATION.cff) looks CRAN's index up when it loads; offline, a closed port on this
    # machine answers at once, so the build reaches for no server (one harmless warning).
    options(repos = c(CRAN = "http://127.0.0.1:9"))
  }
  sandpaper::build_lesson(args[[2]], preview = FALSE)
  cat("workbench: built", file.path(normalizePath(args[[2]]), "site", "docs", "index.html"), "\n")
} else {
  cat("usage: Rscript tools/workbench.R check|install|validate|build ...\n")
  quit(status = 2L)
}
