"""
@article{Liu2025IsoNet2,
title = "IsoNet2 determines cellular structures at submolecular resolution without averaging",
author = "Liu, Yun-Tao and Fan, Hongcheng and Jih, Jonathan and Tran, Liam and Zhang, Xiaoying and Zhou, Z. Hong",
journal = "bioRxiv (preprint, brief communication)",
year = "2025",
note = "Code: https://github.com/IsoNet-cryoET/IsoNet2",
url = "https://github.com/IsoNet-cryoET/IsoNet2"
}

@article{Liu2022IsoNet,
title = "Isotropic reconstruction for electron tomography with deep learning",
author = "Liu, Yun-Tao and Zhang, Heng and Wang, Hui and Tao, Chang-Lu and Bi, Guo-Qiang and Zhou, Z. Hong",
journal = "Nature Communications",
volume = "13",
pages = "6482",
year = "2022",
doi = "https://doi.org/10.1038/s41467-022-33957-8",
url = "https://doi.org/10.1038/s41467-022-33957-8"
}
"""
