-- Which extraction wrote each match, the message it came in, a key for damage_events, and the
-- players whose hits and circle samples are stored when TRACKED_PLAYERS=table.
-- Runs with search_path set to pewproc's schema; names are unqualified on purpose.

ALTER TABLE matches ADD COLUMN extractor_version text;
ALTER TABLE matches ADD COLUMN message jsonb;
CREATE INDEX matches_extractor_version ON matches (extractor_version);

ALTER TABLE damage_events ADD COLUMN hit_seq int8;

CREATE TABLE tracked_players (
    account_id   text PRIMARY KEY,
    player_name  text,
    added_at     timestamptz NOT NULL DEFAULT now()
);
