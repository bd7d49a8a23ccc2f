# Ruby's delayed_job (ActiveRecord backend, PostgreSQL) through the peers' workloads.
# Run by run.sh; prints RESULT/VERSION lines on stdout, progress on stderr.
require "logger"
require "active_record"
require "delayed_job"
require "delayed_job_active_record"

DB = ENV.fetch("PEERS_DJ_DATABASE", "peers_delayed_job")
SCRATCH = ENV["PEERS_DJ_SCRATCH"]
CONFIG = { adapter: "postgresql", host: "127.0.0.1", port: 5432, username: "postgres",
           database: DB, pool: 2 }.freeze

SINGLE = Integer(ENV.fetch("SINGLE", 2_000))
BULK = Integer(ENV.fetch("BULK", 20_000))
WORKOFF = Integer(ENV.fetch("WORKOFF", 20_000))
PROCS = Integer(ENV.fetch("PROCS", 4))
PICKUP = Integer(ENV.fetch("PICKUP", 200))
PICKUP_DEFAULT = Integer(ENV.fetch("PICKUP_DEFAULT", PICKUP))
PICKUP_GAP = 0.020

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
def wall = Process.clock_gettime(Process::CLOCK_REALTIME)
def log(msg) = $stderr.puts("[delayed_job] #{msg}")
def sql(s) = ActiveRecord::Base.connection.execute(s)

def result(workload, value, unit, note)
  v = unit == "ms" ? format("%.1f", value) : format("%.0f", value)
  puts "RESULT delayed_job #{workload} #{v} #{unit} #{note}"
  $stdout.flush
end

# The no-op job: a plain object, no state.
class NoopJob
  def perform; end
end

# Records when perform started (wall clock, seconds) for the pickup workloads.
class PickupJob
  def initialize(i)
    @i = i
  end

  def perform
    t = Process.clock_gettime(Process::CLOCK_REALTIME)
    ActiveRecord::Base.connection.execute("INSERT INTO peers_pickup (i, t) VALUES (#{Integer(@i)}, #{t})")
  end
end

# --- database: dropped and created anew, then delayed_job's standard migration
ActiveRecord::Base.logger = nil
Delayed::Worker.logger = Logger.new(File::NULL)
Delayed::Worker.backend = :active_record

ActiveRecord::Base.establish_connection(CONFIG.merge(database: "postgres"))
sql("DROP DATABASE IF EXISTS #{DB} WITH (FORCE)")
sql("CREATE DATABASE #{DB}")
ActiveRecord::Base.remove_connection
ActiveRecord::Base.establish_connection(CONFIG)

def migrate!
  ActiveRecord::Migration.verbose = false
  ActiveRecord::Schema.define do
    # delayed_job's generator migration (delayed_job_active_record 4.1, templates/migration.rb)
    create_table :delayed_jobs, force: true do |table|
      table.integer :priority, default: 0, null: false # Allows some jobs to jump to the front of the queue
      table.integer :attempts, default: 0, null: false # Provides for retries, but still fail eventually.
      table.text :handler,                 null: false # YAML-encoded string of the object that will do work
      table.text :last_error                           # reason for last failure (See Note below)
      table.datetime :run_at                           # When to run. Could be Time.zone.now for immediately, or sometime in the future.
      table.datetime :locked_at                        # Set when a client is working on this object
      table.datetime :failed_at                        # Set when all retries have failed (actually, by default, the record is deleted instead)
      table.string :locked_by                          # Who is working on this object (if locked)
      table.string :queue                              # The name of the queue this job is in
      table.timestamps null: true
    end
    add_index :delayed_jobs, [:priority, :run_at], name: "delayed_jobs_priority"
  end
  ActiveRecord::Base.connection.execute("DROP TABLE IF EXISTS peers_pickup")
  ActiveRecord::Base.connection.execute("CREATE TABLE peers_pickup (i int PRIMARY KEY, t double precision NOT NULL)")
end

# As dj's benchmark: a fresh table and a CHECKPOINT before every workload, and a
# VACUUM ANALYZE of a filled queue before it is worked off.
def fresh!
  migrate!
  sql("CHECKPOINT")
end

def vacuum!
  sql("VACUUM ANALYZE delayed_jobs")
  sql("CHECKPOINT")
end

def jobs_left = Delayed::Job.count

def fork_child(&blk)
  ActiveRecord::Base.clear_all_connections!
  pid = fork do
    ActiveRecord::Base.establish_connection(CONFIG)
    blk.call
    exit!(0)
  rescue Exception => e # rubocop:disable Lint/RescueException
    $stderr.puts("[delayed_job] child #{Process.pid}: #{e.class}: #{e.message}")
    exit!(1)
  end
  pid
end

def wait_ok(pid)
  _, st = Process.wait2(pid)
  raise "child #{pid} failed: #{st.inspect}" unless st.success?
end

def enqueue_noops(n)
  n.times { Delayed::Job.enqueue(NoopJob.new) }
end

# --- single_enqueue: one Delayed::Job.enqueue per transaction (its own INSERT, autocommit)
fresh!
log "single_enqueue: #{SINGLE} jobs, one transaction each"
t0 = now
enqueue_noops(SINGLE)
dt = now - t0
raise "expected #{SINGLE} jobs, found #{jobs_left}" unless jobs_left == SINGLE
result("single_enqueue", SINGLE / dt, "jobs/s", "1 Delayed::Job.enqueue per transaction")

# --- bulk_enqueue: no batch API; the same calls inside one transaction
fresh!
log "bulk_enqueue: #{BULK} jobs in one transaction"
t0 = now
ActiveRecord::Base.transaction { enqueue_noops(BULK) }
dt = now - t0
raise "expected #{BULK} jobs, found #{jobs_left}" unless jobs_left == BULK
result("bulk_enqueue", BULK / dt, "jobs/s",
       "no batch API: #{BULK} Delayed::Job.enqueue calls in one ActiveRecord::Base.transaction")

# --- workoff_default: one in-process Delayed::Worker with its defaults, work_off(N)
fresh!
log "workoff_default: enqueue #{WORKOFF}"
ActiveRecord::Base.transaction { enqueue_noops(WORKOFF) }
vacuum!
log "workoff_default: work_off(#{WORKOFF})"
t0 = now
worker = Delayed::Worker.new
ok, failed = worker.work_off(WORKOFF)
dt = now - t0
raise "work_off: #{ok} ok, #{failed} failed, #{jobs_left} left" unless ok == WORKOFF && failed.zero? && jobs_left.zero?
result("workoff_default", WORKOFF / dt, "jobs/s",
       "N=#{WORKOFF}, 1 process, Delayed::Worker.new.work_off(N), defaults, logger to /dev/null")

# --- workoff_tuned: PROCS forked worker processes, each work_off until the table is empty
fresh!
log "workoff_tuned: enqueue #{WORKOFF}"
ActiveRecord::Base.transaction { enqueue_noops(WORKOFF) }
vacuum!
log "workoff_tuned: #{PROCS} processes"
t0 = now
pids = Array.new(PROCS) do
  fork_child do
    w = Delayed::Worker.new
    deadline = now + 600
    loop do
      ok, failed = w.work_off(100)
      raise "#{failed} jobs failed" unless failed.zero?
      # work_off stops early when a claim finds nothing (another process holds the row it
      # wanted): go on while any job is left, locked or not.
      break if ok.zero? && Delayed::Job.count.zero?
      raise "deadline" if now > deadline
    end
  end
end
pids.each { |pid| wait_ok(pid) }
dt = now - t0
ActiveRecord::Base.establish_connection(CONFIG)
raise "#{jobs_left} jobs left" unless jobs_left.zero?
result("workoff_tuned", WORKOFF / dt, "jobs/s",
       "N=#{WORKOFF}, #{PROCS} processes each Delayed::Worker.new.work_off until empty")

# --- pickup: a running worker (Delayed::Worker#start) in another process, jobs enqueued
# PICKUP_GAP apart; latency = enqueue returning -> perform starting.
def pickup(n, sleep_delay)
  fresh!
  pid = fork_child do
    Delayed::Worker.new(sleep_delay: sleep_delay, quiet: true).start
  end
  ActiveRecord::Base.establish_connection(CONFIG)
  sleep 1.0 # the worker is up and idle (polling)
  enq = {}
  n.times do |i|
    Delayed::Job.enqueue(PickupJob.new(i))
    enq[i] = wall
    sleep PICKUP_GAP
  end
  deadline = now + sleep_delay * 3 + 30
  while sql("SELECT count(*) AS c FROM peers_pickup").first["c"].to_i < n
    raise "pickup: timed out" if now > deadline
    sleep 0.05
  end
  Process.kill(:KILL, pid)
  Process.wait(pid)
  rows = sql("SELECT i, t FROM peers_pickup").to_a
  lat = rows.map { |r| (r["t"].to_f - enq.fetch(r["i"].to_i)) * 1000.0 }.sort
  if SCRATCH
    File.write(File.join(SCRATCH, "pickup_sleep_#{sleep_delay}.txt"), lat.map { |x| format("%.3f", x) }.join("\n") + "\n")
  end
  pct = ->(p) { lat[[(p * lat.size).ceil - 1, 0].max] } # nearest rank
  [pct.(0.50), pct.(0.99)]
end

log "pickup: #{PICKUP_DEFAULT} jobs #{(PICKUP_GAP * 1000).round} ms apart, sleep_delay 5 (default)"
p50, p99 = pickup(PICKUP_DEFAULT, Delayed::Worker::DEFAULT_SLEEP_DELAY)
note = "#{PICKUP_DEFAULT} jobs 20 ms apart, worker in another process, sleep_delay #{Delayed::Worker::DEFAULT_SLEEP_DELAY} s (default, polling)"
result("pickup_p50_ms", p50, "ms", note)
result("pickup_p99_ms", p99, "ms", note)

log "pickup: #{PICKUP} jobs #{(PICKUP_GAP * 1000).round} ms apart, sleep_delay 0.1"
p50, p99 = pickup(PICKUP, 0.1)
note = "#{PICKUP} jobs 20 ms apart, worker in another process, sleep_delay 0.1 s (tuned)"
result("pickup_tuned_p50_ms", p50, "ms", note)
result("pickup_tuned_p99_ms", p99, "ms", note)

ver = ->(g) { Gem::Specification.find_by_name(g).version.to_s }
puts "VERSION delayed_job #{ver.("delayed_job")} delayed_job_active_record #{ver.("delayed_job_active_record")} " \
     "activerecord #{ActiveRecord.version} ruby #{RUBY_VERSION}"
