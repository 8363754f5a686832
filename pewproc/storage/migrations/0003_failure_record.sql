-- A failed or skipped attempt is recorded beside the match, never over an earlier success:
-- these columns keep the latest unsuccessful attempt while status and counts stay those of the
-- last completed one. See docs/reliability.md ("Only success replaces rows").
-- Runs with search_path set to pewproc's schema; names are unqualified on purpose.

ALTER TABLE matches
    ADD COLUMN last_error_reason text,
    ADD COLUMN last_error        text,
    ADD COLUMN last_failed_at    timestamptz,
    ADD COLUMN last_attempt      int8;
