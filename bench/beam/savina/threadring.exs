# Savina Thread Ring (ThreadRingAkkaActorBenchmark), the twin of
# bench/savina_threadring.c.
# Usage: elixir threadring.exs [ACTORS] [PASSES]
#        ACTORS in a ring (Savina's N, default 100), the token passed PASSES
#        times (Savina's R, default 100,000)
#
# Each actor first learns its successor ({:next, pid}, Savina's
# DataMessage). {:ping, k} with k > 0 goes on as {:ping, k - 1}; the actor
# that gets {:ping, 0} sends {:exit, ACTORS, 0} round the ring and each
# actor ends on it, adding the pings it handled; the last tells this
# process the total, which must be PASSES + 1. ops = PASSES token passes.
defmodule Ring do
  def start(parent) do
    receive do
      {:next, next} -> loop(next, 0, parent)
    end
  end

  def loop(next, pings, parent) do
    receive do
      {:ping, 0} ->
        send(next, {:exit, :persistent_term.get(:ring_actors), 0})
        loop(next, pings + 1, parent)

      {:ping, k} ->
        send(next, {:ping, k - 1})
        loop(next, pings + 1, parent)

      {:exit, 1, total} ->
        send(parent, {:done, total + pings})

      {:exit, left, total} ->
        send(next, {:exit, left - 1, total + pings})
    end
  end
end

{actors, passes} =
  case System.argv() |> Enum.map(&String.to_integer/1) do
    [] -> {100, 100_000}
    [a] -> {a, 100_000}
    [a, r] -> {a, r}
  end

:persistent_term.put(:ring_actors, actors)
parent = self()
t0 = System.monotonic_time(:microsecond)
pids = for _ <- 1..actors, do: spawn(fn -> Ring.start(parent) end)
Enum.zip(pids, tl(pids) ++ [hd(pids)]) |> Enum.each(fn {p, nx} -> send(p, {:next, nx}) end)
send(hd(pids), {:ping, passes})
total = receive do {:done, t} -> t end
us = System.monotonic_time(:microsecond) - t0

if total != passes + 1 do
  IO.puts(:stderr, "savina_threadring: wrong result: the ring handled #{total} pings, expected #{passes + 1}")
  System.halt(1)
end

secs = us / 1.0e6
IO.puts("beam savina_threadring actors=#{actors} passes=#{passes} ops=#{passes} secs=#{secs} ops_per_s=#{round(passes / secs)}")
