# Savina Big (BigAkkaActorBenchmark), the twin of bench/savina_big.c.
# Usage: elixir big.exs [A] [PINGS]
#        A actors (Savina's W, default 120), PINGS pings each (Savina's N,
#        default 20,000)
#
# A actors and a sink; each actor gets the tuple of all actors ({:neighbors,
# t}, Savina's NeighborMessage), then {:pong, -1} starts it: it pings a
# neighbour picked by Savina's PseudoRandom seeded with its index, waits for
# the pong, PINGS times, and answers every {:ping, id} with {:pong, my_id}.
# After its last pong it tells the sink; when all A have, the sink sends
# :exit to all, and each actor ends (an :atomics countdown, as weir's
# atomic; the last tells this process). A pong from another actor than the
# one pinged, or a wrong ping count, fails the run. ops = A * PINGS.
defmodule Big do
  def start(id, pings, sink, errors, left, parent) do
    receive do
      {:neighbors, t} -> loop(id, t, 0, -1, id, pings, sink, errors, left, parent)
    end
  end

  # Savina's PseudoRandom: value = (value * 1309 + 13849) & 65535.
  defp next_rand(v), do: Bitwise.band(v * 1309 + 13849, 65535)

  def loop(id, nb, sent, exp, rnd, pings, sink, errors, left, parent) do
    receive do
      {:ping, from} ->
        send(elem(nb, from), {:pong, id})
        loop(id, nb, sent, exp, rnd, pings, sink, errors, left, parent)

      {:pong, from} ->
        if from != exp, do: :atomics.add(errors, 1, 1)

        if sent == pings do
          send(sink, :exit)
          loop(id, nb, sent, exp, rnd, pings, sink, errors, left, parent)
        else
          rnd = next_rand(rnd)
          target = rem(rnd, tuple_size(nb))
          send(elem(nb, target), {:ping, id})
          loop(id, nb, sent + 1, target, rnd, pings, sink, errors, left, parent)
        end

      :exit ->
        if sent != pings, do: :atomics.add(errors, 1, 1)
        if :atomics.sub_get(left, 1, 1) == 0, do: send(parent, :done)
    end
  end

  def sink(a, exits) do
    receive do
      {:neighbors, t} ->
        sink(t, exits)

      :exit ->
        if exits + 1 == tuple_size(a) do
          a |> Tuple.to_list() |> Enum.each(&send(&1, :exit))
        else
          sink(a, exits + 1)
        end
    end
  end
end

{a, pings} =
  case System.argv() |> Enum.map(&String.to_integer/1) do
    [] -> {120, 20_000}
    [a] -> {a, 20_000}
    [a, p] -> {a, p}
  end

parent = self()
errors = :atomics.new(1, [])
left = :atomics.new(1, [])
:atomics.put(left, 1, a)
t0 = System.monotonic_time(:microsecond)
sink = spawn(fn -> Big.sink(nil, 0) end)
actors = for i <- 0..(a - 1), do: spawn(fn -> Big.start(i, pings, sink, errors, left, parent) end)
nb = List.to_tuple(actors)
send(sink, {:neighbors, nb})
Enum.each(actors, &send(&1, {:neighbors, nb}))
Enum.each(actors, &send(&1, {:pong, -1}))
receive do :done -> :ok end
us = System.monotonic_time(:microsecond) - t0

if :atomics.get(errors, 1) != 0 or :atomics.get(left, 1) != 0 do
  IO.puts(:stderr, "savina_big: wrong result: #{:atomics.get(errors, 1)} wrong pongs or ping counts, #{:atomics.get(left, 1)} actors unfinished")
  System.halt(1)
end

secs = us / 1.0e6
IO.puts("beam savina_big actors=#{a} pings=#{pings} ops=#{a * pings} secs=#{secs} ops_per_s=#{round(a * pings / secs)}")
