# Savina Fork-Join throughput (ThroughputAkkaActorBenchmark), the twin of
# bench/savina_fjthrput.c.
# Usage: elixir fjthrput.exs [A] [N]    A actors (default 60), N messages each
#                                       (default 10,000)
#
# This process sends N rounds of one :work message to each of A workers;
# each does Savina's performComputation (sin(37.2)^2, checked > 0) per
# message and ends after its N-th; the last to end (an :atomics countdown,
# as weir's atomic) tells this process. ops = A*N messages; the clock covers
# the spawns too. theta arrives as a variable so that the compiler cannot
# fold :math.sin of a literal.
defmodule FjThrput do
  def worker(0, _theta, left, parent) do
    if :atomics.sub_get(left, 1, 1) == 0, do: send(parent, :done)
  end

  def worker(k, theta, left, parent) do
    receive do
      :work ->
        s = :math.sin(theta)
        if s * s <= 0, do: raise("unrealistic res #{s * s}")
        worker(k - 1, theta, left, parent)
    end
  end

  def rounds(0, _actors), do: :ok

  def rounds(r, actors) do
    Enum.each(actors, &send(&1, :work))
    rounds(r - 1, actors)
  end
end

{a, n} =
  case System.argv() |> Enum.map(&String.to_integer/1) do
    [] -> {60, 10_000}
    [a] -> {a, 10_000}
    [a, n] -> {a, n}
  end

parent = self()
theta = String.to_float("37.2")
left = :atomics.new(1, [])
:atomics.put(left, 1, a)
t0 = System.monotonic_time(:microsecond)
actors = for _ <- 1..a, do: spawn(fn -> FjThrput.worker(n, theta, left, parent) end)
FjThrput.rounds(n, actors)
receive do :done -> :ok end
us = System.monotonic_time(:microsecond) - t0

if :atomics.get(left, 1) != 0 do
  IO.puts(:stderr, "savina_fjthrput: wrong result: #{:atomics.get(left, 1)} workers unfinished")
  System.halt(1)
end

secs = us / 1.0e6
IO.puts("beam savina_fjthrput actors=#{a} n=#{n} ops=#{a * n} secs=#{secs} ops_per_s=#{round(a * n / secs)}")
