"""The Python peer for benches/judge_client.rs: openai.AsyncOpenAI against the same
stub, N chat requests at a fixed concurrency. Prints one JSON line."""
import asyncio, json, resource, sys, time

from openai import AsyncOpenAI

url, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


async def main():
    client = AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)
    sem = asyncio.Semaphore(conc)

    async def one(i):
        async with sem:
            r = await client.chat.completions.create(
                model="stub",
                messages=[{"role": "user", "content": f"Rate sample {i}."}],
                max_tokens=16,
                temperature=0.0,
            )
            return r.choices[0].message.content

    # Warm the connection pool, as the Rust side does.
    await asyncio.gather(*(one(i) for i in range(conc)))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    assert all(o for o in out)
    print(json.dumps({"rps": n / wall, "cpu_us_per_req": cpu / n * 1e6, "wall_s": wall}))


asyncio.run(main())
