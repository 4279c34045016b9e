# Savina Chameneos (ChameneosAkkaActorBenchmark), the twin of
# bench/savina_chameneos.c.
# Usage: elixir chameneos.exs [C] [MEETINGS]
#        C chameneos (Savina default 100), MEETINGS meetings (200,000)
#
# The mall spawns C chameneos (red, yellow, blue in turn); each sends
# {:meet, colour, self()} to the mall. The mall holds the first of two and
# forwards the second's meet to it, counting a meeting; the first takes the
# complementary colour, answers {:change, colour} to the second, and both go
# back to the mall. After MEETINGS meetings the mall answers each meet with
# {:exit, mall}; a chameneo sends {:count, meetings} and ends. The counts
# must sum to 2 * MEETINGS. ops = MEETINGS meetings.
defmodule Chameneos do
  def complement(:faded, _), do: :faded
  def complement(_, :faded), do: :faded
  def complement(c, c), do: c
  def complement(:red, :yellow), do: :blue
  def complement(:red, :blue), do: :yellow
  def complement(:yellow, :red), do: :blue
  def complement(:yellow, :blue), do: :red
  def complement(:blue, :red), do: :yellow
  def complement(:blue, :yellow), do: :red

  def mall_start(c, n, parent) do
    mall = self()
    colours = {:red, :yellow, :blue}

    for i <- 0..(c - 1) do
      colour = elem(colours, rem(i, 3))
      spawn(fn -> cham_start(mall, colour) end)
    end

    mall(n, nil, c, 0, 0, parent)
  end

  def mall(n, waiting, c, faded, sum, parent) do
    receive do
      {:count, k} ->
        if faded + 1 == c do
          send(parent, {:done, faded + 1, sum + k, n})
        else
          mall(n, waiting, c, faded + 1, sum + k, parent)
        end

      {:meet, _colour, from} = msg ->
        cond do
          n == 0 ->
            send(from, {:exit, self()})
            mall(n, waiting, c, faded, sum, parent)

          waiting == nil ->
            mall(n, from, c, faded, sum, parent)

          true ->
            send(waiting, msg)
            mall(n - 1, nil, c, faded, sum, parent)
        end
    end
  end

  def cham_start(mall, colour) do
    send(mall, {:meet, colour, self()})
    cham(mall, colour, 0)
  end

  def cham(mall, colour, meetings) do
    receive do
      {:meet, other, from} ->
        colour = complement(colour, other)
        send(from, {:change, colour, self()})
        send(mall, {:meet, colour, self()})
        cham(mall, colour, meetings + 1)

      {:change, colour, _from} ->
        send(mall, {:meet, colour, self()})
        cham(mall, colour, meetings + 1)

      {:exit, from} ->
        send(from, {:count, meetings})
    end
  end
end

{c, n} =
  case System.argv() |> Enum.map(&String.to_integer/1) do
    [] -> {100, 200_000}
    [c] -> {c, 200_000}
    [c, n] -> {c, n}
  end

if c < 2 do
  IO.puts(:stderr, "savina_chameneos: C must be >= 2")
  System.halt(2)
end

parent = self()
t0 = System.monotonic_time(:microsecond)
spawn(fn -> Chameneos.mall_start(c, n, parent) end)
{faded, sum, left} = receive do {:done, f, s, l} -> {f, s, l} end
us = System.monotonic_time(:microsecond) - t0

if faded != c or sum != 2 * n or left != 0 do
  IO.puts(:stderr, "savina_chameneos: wrong result: faded=#{faded} of #{c}, meetings summed #{sum}, expected #{2 * n}")
  System.halt(1)
end

secs = us / 1.0e6
IO.puts("beam savina_chameneos chameneos=#{c} meetings=#{n} ops=#{n} secs=#{secs} ops_per_s=#{round(n / secs)}")
