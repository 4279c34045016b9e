# Savina Counting Actor (CountingAkkaActorBenchmark), the twin of
# bench/savina_count.c.
# Usage: elixir count.exs [N]           N increments (Savina default 1,000,000)
#
# A producer, told :start, sends N :increment to a counter, then
# {:retrieve, self()}; the counter answers {:result, count}, which must be
# N. ops = N messages counted; the clock covers the two spawns too.
defmodule Count do
  def producer(counter, n, parent) do
    receive do
      :start ->
        for _ <- 1..n, do: send(counter, :increment)
        send(counter, {:retrieve, self()})
        producer(counter, n, parent)

      {:result, r} ->
        send(parent, {:done, r})
    end
  end

  def counter(count) do
    receive do
      :increment -> counter(count + 1)
      {:retrieve, from} -> send(from, {:result, count})
    end
  end
end

n =
  case System.argv() do
    [] -> 1_000_000
    [a] -> String.to_integer(a)
  end

parent = self()
t0 = System.monotonic_time(:microsecond)
counter = spawn(fn -> Count.counter(0) end)
producer = spawn(fn -> Count.producer(counter, n, parent) end)
send(producer, :start)
result = receive do {:done, r} -> r end
us = System.monotonic_time(:microsecond) - t0

if result != n do
  IO.puts(:stderr, "savina_count: wrong result: counted #{result}, expected #{n}")
  System.halt(1)
end

secs = us / 1.0e6
IO.puts("beam savina_count n=#{n} ops=#{n} secs=#{secs} ops_per_s=#{round(n / secs)}")
