-- Several worker processes: the one polling a video job holds it until leased_until, so
-- each job is polled by exactly one worker at a time and a lost worker's lease expires.
ALTER TABLE video_jobs ADD COLUMN leased_until TIMESTAMP;
