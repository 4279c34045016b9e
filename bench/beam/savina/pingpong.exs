# Savina PingPong (PingPongAkkaActorBenchmark), the twin of
# bench/savina_pingpong.c.
# Usage: elixir pingpong.exs [N]        N pings (Savina default 40,000)
#
# ping, told :start, sends {:send_ping, self()} to pong; pong answers
# :send_pong; on each pong, ping sends itself :ping (Savina's step between
# round trips), which sends the next {:send_ping, self()}. After N round
# trips ping sends :stop; pong reports how many pings it answered, which
# must be N. ops = N round trips; the clock covers the two spawns too.
defmodule PingPong do
  def ping(left, pong) do
    receive do
      m when m in [:start, :ping] ->
        send(pong, {:send_ping, self()})
        ping(left - 1, pong)

      :send_pong ->
        if left > 0 do
          send(self(), :ping)
          ping(left, pong)
        else
          send(pong, :stop)
        end
    end
  end

  def pong(count, parent) do
    receive do
      {:send_ping, from} ->
        send(from, :send_pong)
        pong(count + 1, parent)

      :stop ->
        send(parent, {:done, count})
    end
  end
end

n =
  case System.argv() do
    [] -> 40_000
    [a] -> String.to_integer(a)
  end

parent = self()
t0 = System.monotonic_time(:microsecond)
pong = spawn(fn -> PingPong.pong(0, parent) end)
ping = spawn(fn -> PingPong.ping(n, pong) end)
send(ping, :start)
count = receive do {:done, c} -> c end
us = System.monotonic_time(:microsecond) - t0

if count != n do
  IO.puts(:stderr, "savina_pingpong: wrong result: pong answered #{count} pings, expected #{n}")
  System.halt(1)
end

secs = us / 1.0e6
IO.puts("beam savina_pingpong n=#{n} ops=#{n} secs=#{secs} ops_per_s=#{round(n / secs)}")
