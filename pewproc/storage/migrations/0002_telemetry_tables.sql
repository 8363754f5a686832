-- The telemetry tables beyond kills and landings: knocks and finishing, hits, fights, per-player
-- stats and weapons, circle samples. Columns in the order of the Table specs in
-- pewproc/telemetry/collectors/ (rows are COPYed in that order). See docs/schema.md.
-- Runs with search_path set to pewproc's schema; names are unqualified on purpose.

CREATE TABLE knocks (
    match_id                      text NOT NULL,
    knocked_at                    timestamptz,
    phase                         float8,
    attack_id                     int8,
    dbno_id                       int8,
    attacker_account_id           text,
    attacker_name                 text,
    attacker_team_id              int8,
    attacker_x_m                  float8,
    attacker_y_m                  float8,
    attacker_z_m                  float8,
    attacker_zone                 text,
    attacker_is_bot               bool,
    victim_account_id             text,
    victim_name                   text,
    victim_team_id                int8,
    victim_x_m                    float8,
    victim_y_m                    float8,
    victim_z_m                    float8,
    victim_zone                   text,
    victim_is_bot                 bool,
    damage_reason                 text,
    damage_category               text,
    weapon                        text,
    distance_m                    float8,
    through_wall                  bool,
    is_attacker_in_vehicle        bool,
    is_team_knock                 bool,
    outcome                       text,
    outcome_at                    timestamptz,
    time_to_outcome_s             float8,
    ended_by_account_id           text,
    ended_by_team_id              int8,
    attacker_mates_known          int8,
    attacker_mate_nearest_m       float8,
    attacker_mate_mean_m          float8,
    attacker_mate_std_m           float8,
    attacker_mates_within_50m     int8,
    attacker_mates_within_100m    int8,
    attacker_mates_within_200m    int8,
    victim_mates_known            int8,
    victim_mate_nearest_m         float8,
    victim_mate_mean_m            float8,
    victim_mate_std_m             float8,
    victim_mates_within_50m       int8,
    victim_mates_within_100m      int8,
    victim_mates_within_200m      int8
);
CREATE INDEX knocks_match_id ON knocks (match_id);

CREATE TABLE player_finishing (
    match_id                 text NOT NULL,
    account_id               text,
    player_name              text,
    team_id                  int8,
    knocks                   int8,
    finished_by_self         int8,
    finished_by_team         int8,
    finished_by_other        int8,
    revived                  int8,
    died_other               int8,
    unresolved               int8,
    instant_kills            int8,
    conversion_rate          float8,
    mean_time_to_finish_s    float8,
    knocks_lt_10m            int8,
    knocks_10_50m            int8,
    knocks_50_100m           int8,
    knocks_100_200m          int8,
    knocks_ge_200m           int8
);
CREATE INDEX player_finishing_match_id ON player_finishing (match_id);

CREATE TABLE damage_events (
    match_id               text NOT NULL,
    damaged_at             timestamptz,
    phase                  float8,
    attack_id              int8,
    attacker_account_id    text,
    attacker_team_id       int8,
    attacker_x_m           float8,
    attacker_y_m           float8,
    attacker_z_m           float8,
    victim_account_id      text,
    victim_team_id         int8,
    victim_x_m             float8,
    victim_y_m             float8,
    victim_z_m             float8,
    victim_health          float8,
    damage                 float8,
    damage_reason          text,
    damage_category        text,
    weapon                 text,
    through_wall           bool,
    is_team_damage         bool
);
CREATE INDEX damage_events_match_id ON damage_events (match_id);

CREATE TABLE fights (
    match_id             text NOT NULL,
    fight_id             int8,
    started_at           timestamptz,
    ended_at             timestamptz,
    duration_s           float8,
    phase                float8,
    centre_x_m           float8,
    centre_y_m           float8,
    radius_m             float8,
    team_count           int8,
    participant_count    int8,
    bot_count            int8,
    hits                 int8,
    knocks               int8,
    kills                int8,
    damage               float8,
    winner_team_id       int8
);
CREATE INDEX fights_match_id ON fights (match_id);

CREATE TABLE fight_participants (
    match_id        text NOT NULL,
    fight_id        int8,
    account_id      text,
    player_name     text,
    team_id         int8,
    is_bot          bool,
    damage_dealt    float8,
    damage_taken    float8,
    hits            int8,
    knocks          int8,
    kills           int8,
    died            bool,
    team_outcome    text
);
CREATE INDEX fight_participants_match_id ON fight_participants (match_id);

CREATE TABLE player_match_stats (
    match_id                  text NOT NULL,
    account_id                text,
    player_name               text,
    team_id                   int8,
    rank                      int8,
    kills                     int8,
    team_kills                int8,
    knocks                    int8,
    assists                   int8,
    killsteals                int8,
    damage_dealt              float8,
    damage_taken_players      float8,
    damage_taken_bluezone     float8,
    damage_taken_fall         float8,
    damage_taken_self_team    float8,
    damage_taken_other        float8,
    heals                     int8,
    boosts                    int8,
    throwables                int8,
    smokes                    int8,
    throwable_damage          float8,
    circle_samples            int8,
    mean_dist_centre_m        float8,
    max_dist_centre_m         float8,
    mean_dist_edge_m          float8,
    min_dist_edge_m           float8,
    time_outside_s            float8
);
CREATE INDEX player_match_stats_match_id ON player_match_stats (match_id);

CREATE TABLE weapon_stats (
    match_id           text NOT NULL,
    account_id         text,
    player_name        text,
    team_id            int8,
    weapon_category    text,
    damage             float8,
    hits               int8,
    knocks             int8,
    kills              int8
);
CREATE INDEX weapon_stats_match_id ON weapon_stats (match_id);

CREATE TABLE circle_positions (
    match_id         text NOT NULL,
    account_id       text,
    team_id          int8,
    sampled_at       timestamptz,
    phase            float8,
    elapsed_s        float8,
    x_m              float8,
    y_m              float8,
    z_m              float8,
    zone_x_m         float8,
    zone_y_m         float8,
    zone_radius_m    float8,
    dist_centre_m    float8,
    dist_edge_m      float8,
    is_outside       bool,
    next_x_m         float8,
    next_y_m         float8,
    next_radius_m    float8
);
CREATE INDEX circle_positions_match_id ON circle_positions (match_id);
