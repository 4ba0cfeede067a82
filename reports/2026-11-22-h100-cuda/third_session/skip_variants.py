# Kernel-dir variants that skip one kernel kind's work right after its pdl wait (timing only:
# the prologue's loads still run, the results are wrong). Run from the repository root at
# commit 205f347 (the line numbers below are that commit's); then, on the device,
#   TRACECHECK_KERNEL_DIR=$PWD/.dev/sk/<variant> TRACECHECK_BENCH_CONFIGS=1x512,8x512,8x8192 \
#   TRACECHECK_BENCH_NUMERICS=invariant TRACECHECK_BENCH_REPEATS=3 cuda_speed
import shutil
src = 'engine/src/backend/cuda/kernels'
V = {  # name: (matmul condition, skip attention, skip split merge)
    'base': ('0', '0', '0'),
    'q': ('epi == EPI_QKV', '0', '0'),
    'o': ('(epi == EPI_RESIDUAL && k < 1000)', '0', '0'),   # SmolLM2: O has k = 576
    'dn': ('(epi == EPI_RESIDUAL && k >= 1000)', '0', '0'),  # down: k = 1536
    'gu': ('epi == EPI_SWIGLU', '0', '0'),
    'lm': ('epi == EPI_STORE', '0', '0'),
    'at': ('0', '1', '1'),
    'mg': ('0', '0', '1'),
    'all': ('1', '1', '1'),
}
for name, (mm, at, mg) in V.items():
    d = f'.dev/sk/{name}'
    shutil.copytree(src, d)
    c = open(f'{d}/common.cuh').read()
    c = c.replace('#define EPI_QKV 3', f'#define EPI_QKV 3\n#define SKIP_MM ({mm})\n'
                  f'#define SKIP_AT ({at})\n#define SKIP_MG ({mg})', 1)
    open(f'{d}/common.cuh', 'w').write(c)
    m = open(f'{d}/matmul.cu').read().split('\n')
    assert m[299].strip() == 'pdl_enter();'  # dec_body
    m[299] += ' if (SKIP_MM) return;'
    open(f'{d}/matmul.cu', 'w').write('\n'.join(m))
    a = open(f'{d}/attention_flash_tc.cu').read().split('\n')
    assert a[746].strip() == 'pdl_enter();' and a[507].strip() == 'pdl_enter();'
    a[746] += ' if (SKIP_AT) return;'  # flash_tc_dec_body
    a[507] += ' if (SKIP_MG) return;'  # flash_tc_merge
    i = [j for j, l in enumerate(a) if 'if (merge_cnt == nullptr || plast < FT_SPLIT) return;' in l][0]
    a[i] = a[i].replace('return;', 'return; if (SKIP_MG) return;')  # the fused merge
    open(f'{d}/attention_flash_tc.cu', 'w').write('\n'.join(a))
