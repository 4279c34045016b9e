# Savina Fork-Join actor creation (ForkJoinAkkaActorBenchmark), the twin of
# bench/savina_fjcreate.c.
# Usage: elixir fjcreate.exs [N]        N actors (Savina default 40,000)
#
# N times this process spawns an actor and sends it one :work message; the
# actor does Savina's performComputation (sin(37.2)^2, checked > 0) and
# ends; the last (an :atomics countdown, as weir's atomic) tells this
# process. ops = N actors created, run and ended.
defmodule FjCreate do
  def actor(theta, left, parent) do
    receive do
      :work ->
        s = :math.sin(theta)
        if s * s <= 0, do: raise("unrealistic res #{s * s}")
        if :atomics.sub_get(left, 1, 1) == 0, do: send(parent, :done)
    end
  end

  def create(0, _theta, _left, _parent), do: :ok

  def create(i, theta, left, parent) do
    pid = spawn(fn -> actor(theta, left, parent) end)
    send(pid, :work)
    create(i - 1, theta, left, parent)
  end
end

n =
  case System.argv() do
    [] -> 40_000
    [a] -> String.to_integer(a)
  end

parent = self()
theta = String.to_float("37.2")
left = :atomics.new(1, [])
:atomics.put(left, 1, n)
t0 = System.monotonic_time(:microsecond)
FjCreate.create(n, theta, left, parent)
receive do :done -> :ok end
us = System.monotonic_time(:microsecond) - t0

if :atomics.get(left, 1) != 0 do
  IO.puts(:stderr, "savina_fjcreate: wrong result: #{:atomics.get(left, 1)} actors did not run")
  System.halt(1)
end

secs = us / 1.0e6
IO.puts("beam savina_fjcreate n=#{n} ops=#{n} secs=#{secs} ops_per_s=#{round(n / secs)}")
